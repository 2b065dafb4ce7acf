"""What tests/test_distributed.py starts as several processes (`python -m torch.distributed.run ...
tests/distributed_worker.py MODE ...`): a training through the library, or each rank reading its own
data so that the ranks disagree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

NO_DROPOUT = {"aggregator_dropout": 0.0, "classifier_dropout": 0.0}


def frozen_training(model: str, train: str, dev: str, output: str, cache: str, batch_size: int, epochs: int):
    """The frozen segment classifier on `train`, without dropout (so that ranks and batches can agree)."""
    from longdoc.logs import show_progress
    from longdoc.training import train_classifier

    show_progress()
    result = train_classifier(train, dev, output, family="segment", model=model, freeze_encoder=True, chunk_size=14,
                              epochs=epochs, batch_size=batch_size, learning_rate=3e-3, bf16=False, cache_dir=cache,
                              config_overrides=NO_DROPOUT)
    return {"best_epoch": result.best_epoch, "history": result.history}


def disagreeing_ranks():
    """Rank 1 reads one document more than rank 0: every rank must raise the same error."""
    import torch.distributed as dist

    from longdoc.training import distributed

    distributed.start("cpu")
    documents = ["a", "b"] + (["c"] if dist.get_rank() == 1 else [])
    try:
        distributed.check_same_data(documents, ["dev"], {"epochs": 1})
    except ValueError as error:
        # one write of the whole line (below PIPE_BUF: atomic), as the ranks share one pipe; print() writes the
        # text and its newline apart when unbuffered, and the two ranks' lines then ran together
        sys.stdout.write(f"rank {dist.get_rank()}: {error}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "train":
        model, train, dev, output, cache, batch_size, epochs = rest
        from longdoc.runtime import is_main_process

        result = frozen_training(model, train, dev, output, cache, int(batch_size), int(epochs))
        if is_main_process():
            Path(output + ".result.json").write_text(json.dumps(result, default=str))
    else:
        disagreeing_ranks()
