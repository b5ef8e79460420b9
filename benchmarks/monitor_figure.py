"""The picture in docs/monitor.md's "Monitor your own model": a default LSTM and a chrono-initialised one, T = 200.

Run: .venv/bin/python benchmarks/monitor_figure.py  (writes docs/monitor.png; a few seconds)
"""

import warnings

import torch
from torch import nn

import rnnlab
from rnnlab.report.plots import save_figure


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(2, 64, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def main() -> None:
    x = torch.randn(32, 200, 2, generator=torch.Generator().manual_seed(1))
    y = torch.randn(32, 1, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = Model()
    monitor = rnnlab.monitor(model, every=20)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(200):
            loss = (model(x) - y).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    print(*(str(w.message) for w in caught), sep="\n")
    print("horizons:", [r.horizon for r in monitor.history])
    save_figure(monitor.plot(), "docs/monitor.png")


if __name__ == "__main__":
    main()
