"""One wording for where a training run stands, in every message."""


def position(epochs_done: int, step: int) -> str:
    """'the end of epoch 2' or 'epoch 3, step 4' (4 steps done in epoch 3)."""
    return (
        f"the end of epoch {epochs_done}" if step == 0 else f"epoch {epochs_done + 1}, step {step}"
    )
