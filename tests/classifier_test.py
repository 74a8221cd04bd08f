"""The repo's digit classifier: learns, saves and loads exactly."""

import numpy as np
import pytest

from vgrow_jax import classifier
from vgrow_jax import image_data


def test_classifier_learns_digits_and_round_trips(tmp_path):
  tr, te = image_data.read_digits('train'), image_data.read_digits('test')
  clf = classifier.fit(tr, te, steps=150, batch_size=32, learning_rate=3e-3, shift=0, width=8)
  assert clf.image_shape == (8, 8, 1) and clf.num_classes == 10
  assert clf.test_accuracy > 0.7  # chance is 0.1; 0.83 measured
  path = str(tmp_path / 'c.npz')
  classifier.save(path, clf)
  back = classifier.load(path)
  x = np.asarray(image_data.to_unit_range(te.images[:7]))
  np.testing.assert_array_equal(back.probs(x), clf.probs(x))
  assert back.features(x).shape == (7, 128) and back.test_accuracy == clf.test_accuracy
  assert back.train_data == 'digits:train'
  with pytest.raises(ValueError, match=r'trained on images \(8, 8, 1\), got \(4, 4, 1\)'):
    back.probs(np.zeros((1, 4, 4, 1)))
  with pytest.raises(FileNotFoundError, match='vgrow-classifier --out=PATH'):
    classifier.load(str(tmp_path / 'none.npz'))
