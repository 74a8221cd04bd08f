r"""B1 peer: the official PyTorch VGrow outer loop, timed the same way.

The official code (``xjtuygao/VGrow``) is not part of this project: check it
out beside the project and point ``--official_dir`` at it; its ``network.py``
(``G_resnet``, ``D_resnet``, ``weights_init``) is imported from there. The
loop below reproduces the compute of the official ``main.py`` step for step
(its data set, classifier and logging are left out: they need downloads):
pool from G in eval mode (with autograd on, as there), T × (U D steps on
``next(iter(dataloader))`` and a random pool batch, then one move of the
whole pool with clamp to [−1, 1]), then L passes of MSE fitting of G over a
shuffled DataLoader of the pool. RMSprop(1e-4) for both nets.

  python -m benchmarks.peer_pytorch --official_dir=/path/to/VGrow \
    --arch=resnet_sn --width=32 --channels=1 --batch=64 --pool=4 \
    --particle_steps=5 --d_steps=1 --g_passes=1 --loops=3 --divergence=kl

``--arch=mlp`` uses a plain PyTorch MLP pair of the same shape as
vgrow_jax's (the official code has none). Last line:
``seconds_per_outer_loop <median>``; the first loop is a warm-up.
"""

import argparse
import random
import statistics
import sys
import time


def build_mlp(torch, nz, width, depth, dim):
  nn = torch.nn
  def mlp(i, o):
    layers, d = [], i
    for _ in range(depth):
      layers += [nn.Linear(d, width), nn.ReLU()]
      d = width
    layers.append(nn.Linear(d, o))
    return nn.Sequential(*layers)
  g = mlp(nz, dim)
  d_net = mlp(dim, 1)
  return g, lambda x: d_net(x).view(-1), d_net


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--official_dir', required=True)
  p.add_argument('--arch', default='resnet_sn', choices=['resnet_sn', 'mlp'])
  p.add_argument('--width', type=int, default=32)
  p.add_argument('--depth', type=int, default=3)
  p.add_argument('--channels', type=int, default=1)
  p.add_argument('--image_size', type=int, default=32)
  p.add_argument('--data_dim', type=int, default=2)
  p.add_argument('--latent_dim', type=int, default=128)
  p.add_argument('--batch', type=int, default=64)
  p.add_argument('--pool', type=int, default=4)
  p.add_argument('--particle_steps', type=int, default=5)
  p.add_argument('--d_steps', type=int, default=1)
  p.add_argument('--g_passes', type=int, default=1)
  p.add_argument('--loops', type=int, default=3)
  p.add_argument('--divergence', default='kl')
  p.add_argument('--num_data', type=int, default=1024)
  p.add_argument('--threads', type=int, default=2)
  a = p.parse_args()

  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(a.threads)
  torch.manual_seed(0)
  random.seed(0)
  nz, batch = a.latent_dim, a.batch
  pool_size = batch * a.pool

  if a.arch == 'resnet_sn':
    sys.path.insert(0, a.official_dir)
    import network  # pylint: disable=g-import-not-at-top
    net_g = network.G_resnet(a.channels, a.width, nz)
    net_d = network.D_resnet(a.channels, a.width)
    net_g.apply(network.weights_init)
    net_d.apply(network.weights_init)
    d_fn = net_d
    shape = (a.channels, a.image_size, a.image_size)
    clamp = True
  else:
    net_g, d_fn, net_d = build_mlp(torch, nz, a.width, a.depth, a.data_dim)
    shape = (a.data_dim,)
    clamp = False

  data = torch.rand((a.num_data,) + shape) * 2 - 1
  loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=batch,
                                       shuffle=True)
  optim_d = torch.optim.RMSprop(net_d.parameters(), lr=1e-4)
  optim_g = torch.optim.RMSprop(net_g.parameters(), lr=1e-4)
  mse = torch.nn.MSELoss()
  p_z = torch.empty(pool_size, nz)

  def scale(logit):
    if a.divergence == 'kl':
      return torch.ones_like(logit)
    if a.divergence == 'logd':
      return 1 / (1 + logit.exp())
    if a.divergence == 'js':
      return 1 / (1 + 1 / logit.exp())
    return 1 + logit.exp()

  def outer_loop():
    net_d.train()
    net_g.eval()
    p_z.normal_()
    p_img = net_g(p_z).detach()
    for _ in range(a.particle_steps):
      for _ in range(a.d_steps):
        net_d.zero_grad()
        (real,) = next(iter(loader))
        torch.log(1 + torch.exp(-d_fn(real))).mean().backward()
        idx = random.sample(range(pool_size), batch)
        torch.log(1 + torch.exp(d_fn(p_img[idx]))).mean().backward()
        optim_d.step()
      p_img_t = p_img.clone().requires_grad_(True)
      score = d_fn(p_img_t)
      s = scale(score.detach()).view((-1,) + (1,) * len(shape))
      score.backward(torch.ones(len(p_img_t)))
      p_img = p_img + 0.5 * s * p_img_t.grad
      if clamp:
        p_img = torch.clamp(p_img, -1, 1)
    net_g.train()
    net_d.eval()
    pool_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(p_z.clone(), p_img), batch_size=batch, shuffle=True)
    for _ in range(a.g_passes):
      for z_b, x_b in pool_loader:
        net_g.zero_grad()
        loss = mse(net_g(z_b), x_b)
        loss.backward()
        optim_g.step()

  t0 = time.perf_counter()
  outer_loop()
  print(f'warmup_first_loop_seconds {time.perf_counter() - t0:.3f}')
  times = []
  for _ in range(a.loops):
    t0 = time.perf_counter()
    outer_loop()
    times.append(time.perf_counter() - t0)
  print(f'torch {torch.__version__} threads {torch.get_num_threads()} loops {len(times)} '
        f'times {" ".join(f"{t:.3f}" for t in times)}')
  print(f'seconds_per_outer_loop {statistics.median(times):.4f}')


if __name__ == '__main__':
  main()
