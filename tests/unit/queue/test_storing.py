"""What a stored image is named and carries, and the progress it gives its task."""

from __future__ import annotations

from volcimage.queue.lease import TaskSnapshot
from volcimage.queue.storing import image_id, metadata, progress
from volcimage.tasks.params import TaskParams
from volcimage.tasks.seeds import SLOT_STRIDE, image_seed

PARAMS = TaskParams(
    prompt="a cat",
    negative_prompt="blurry",
    model="seedream-3.0",
    width=1024,
    height=768,
    num_images=2,
    seed=42,
    scale=2.5,
    steps=30,
    reference_images=["upload-1"],
)
TASK = TaskSnapshot(3, "task-a", PARAMS, [{"kind": "upload", "id": "upload-1"}], 1, 0, None)


def test_an_image_has_the_same_id_on_every_attempt_and_its_own_per_position() -> None:
    assert image_id("task-a", 0) == image_id("task-a", 0)
    assert len({image_id("task-a", 0), image_id("task-a", 1), image_id("task-b", 0)}) == 3


def test_a_file_carries_what_reproduces_it() -> None:
    """Every parameter of its task, with the seed of this one image and no count."""
    position = SLOT_STRIDE + 1
    assert metadata(TASK, position) == {
        "task_id": "task-a",
        "image_id": image_id("task-a", position),
        "position": position,
        "prompt": "a cat",
        "negative_prompt": "blurry",
        "model": "seedream-3.0",
        "width": 1024,
        "height": 768,
        "seed": image_seed(42, position),
        "scale": 2.5,
        "steps": 30,
        "watermark": False,
        "group": False,
        "reference_images": ["upload-1"],
        "web_search": False,
        "layer_decomposition": False,
    }


def test_progress_runs_from_10_to_95_as_images_are_stored() -> None:
    assert [progress(stored, 4) for stored in range(5)] == [10, 31, 52, 73, 95]
    assert progress(1, 3) == 38
