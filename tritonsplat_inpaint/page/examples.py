"""The photographs one click away on the page."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import RELEASED


def examples() -> list[dict]:
    """The photographs one click away: the released checkpoint's own example (with its
    mask), scikit-learn's temple (a training photograph) and matplotlib's portrait of Grace
    Hopper (held out of training)."""
    out = [dict(name="example", title="moon crop (with its mask)", path=RELEASED / "example.png",
                mask=RELEASED / "example_mask.png")]  # fmt: skip
    try:
        import sklearn.datasets

        china = Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"
        if china.is_file():
            out.append(dict(name="china", title="temple (china.jpg)", path=china))
    except ImportError:
        pass
    import matplotlib.cbook

    hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if hopper.is_file():
        out.append(dict(name="grace_hopper", title="portrait (grace_hopper.jpg)", path=hopper))
    return out
