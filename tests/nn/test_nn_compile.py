"""torch.compile on converted models: the analog layers run outside the compiled graph, as they are."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from torch import nn

from cimsim.nn import convert


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.gru = nn.GRU(4, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x)).flatten(2).transpose(1, 2)  # [N, 36 tokens, 4]
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.gru(h)[0][:, -1])


@pytest.mark.parametrize("mode", ["hardware", "noise_injection"])
def test_compiled_model_equals_the_eager_one_bit_for_bit(mode):
    torch.manual_seed(0)
    eager = convert(_Net(), "pcm", mode=mode, seed=3)
    compiled_src = copy.deepcopy(eager)  # same weights, same generator positions
    compiled = torch.compile(compiled_src, backend="eager")
    x = torch.randn(2, 1, 8, 8)
    for _ in range(2):  # two steps: fresh chips (draws) each time, in the same order
        y_e, y_c = eager(x), compiled(x)
        assert torch.equal(y_e, y_c)
        y_e.square().sum().backward()
        y_c.square().sum().backward()
    for (name, p_e), p_c in zip(eager.named_parameters(), compiled_src.parameters()):
        assert torch.equal(p_e.grad, p_c.grad), name


def test_import_leaves_dynamo_unloaded_and_compile_still_runs_layers_eagerly(tmp_path):
    """``import cimsim`` does not import TorchDynamo (a heavy import); the analog forwards are marked
    when it is imported later, so a model compiled afterwards still equals the eager one."""
    script = tmp_path / "lazy.py"
    script.write_text(
        "import sys\n"
        "import torch\n"
        "from torch import nn\n"
        "import cimsim\n"
        "from cimsim.nn import convert\n"
        "assert 'torch._dynamo' not in sys.modules, 'importing cimsim loaded TorchDynamo'\n"
        "torch.manual_seed(0)\n"
        "eager = convert(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), 'pcm', seed=1)\n"
        "torch.manual_seed(0)\n"
        "twin = convert(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), 'pcm', seed=1)\n"
        "compiled = torch.compile(twin, backend='eager')\n"
        "x = torch.randn(3, 6)\n"
        "for _ in range(2):\n"
        "    assert torch.equal(eager(x), compiled(x))\n"
        "from cimsim.nn.modules import AnalogLayer\n"
        "assert getattr(AnalogLayer.forward, '_torchdynamo_disable', False)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
