"""DDP: 2 CPU processes with gloo train in sync on disjoint shards; rank 0 writes."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rharm_lib.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str, result: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist
    from test_train import tiny_cfg

    from rharm_lib.train import engine
    from rharm_lib.train.sources import TensorSource

    nets, seen = [], []
    real_build, real_batch = engine.build_network, TensorSource.batch

    def build(cfg):
        nets.append(real_build(cfg))
        return nets[-1]

    def batch(self, step):
        b = real_batch(self, step)
        seen.append(b["index"].tolist())
        return b

    engine.build_network = build
    TensorSource.batch = batch
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in real_build(tiny_cfg().model).state_dict().items()}
    engine.train(
        tiny_cfg(steps=4, batch_size=4, ckpt_every=2),
        data,
        out,
        device="cpu",
        progress=False,
        eval_data="none",
    )
    params = {k: p.detach().clone() for k, p in nets[0].named_parameters()}
    torch.save(
        {"params": params, "init": init, "seen": seen}, os.path.join(result, f"rank{rank}.pt")
    )
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_stay_in_sync(tmp_path):
    from test_train import write_lalonde_dir

    data = write_lalonde_dir(tmp_path / "lal")
    out, result = tmp_path / "run", tmp_path / "res"
    result.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(out), str(result)), nprocs=2, join=True)
    r0, r1 = (torch.load(result / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # the ranks hold identical weights after 4 DDP steps ...
    assert r0["params"].keys() == r1["params"].keys()
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    # ... that did train (not merely both left at the initialisation)
    assert any(not torch.equal(r0["params"][k], r0["init"][k]) for k in r0["params"])
    # each rank drew a batch of 2 per step from its own shard (even / odd items)
    assert len(r0["seen"]) == len(r1["seen"]) == 4
    assert all(len(b) == 2 for b in r0["seen"] + r1["seen"])
    assert all(i % 2 == 0 for b in r0["seen"] for i in b) and all(
        i % 2 == 1 for b in r1["seen"] for i in b
    )
    # rank 0 alone wrote the checkpoint and the log; the checkpoint holds the synced weights
    ck = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ck["step"] == 4 and ck["provenance"]["world_size"] == 2
    for k, v in r0["params"].items():
        assert torch.equal(ck["model"][k], v), k
