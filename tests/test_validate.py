"""labkit.validate: every message says what was expected and what was given."""

import numpy as np
import pytest
import torch

from labkit import validate


def test_images_accepts_the_convention_and_explains_the_rest():
    x = torch.rand(2, 3, 4, 4)
    assert validate.images(x) is x
    cases = [
        (np.zeros((4, 4, 3)), TypeError, "numpy.ndarray of shape \\(4, 4, 3\\)"),
        ((x * 255).byte(), TypeError, "torch.uint8.*divides uint8 images by 255"),
        (x[0], ValueError, "unsqueeze"),
        (x.permute(0, 2, 3, 1)[:, :, :3], ValueError, "channels"),
        (x * 255, ValueError, "0-255 values\\? divide by 255"),
        (torch.rand(0, 3, 4, 4), ValueError, "empty batch"),
    ]
    for given, error, message in cases:
        with pytest.raises(error, match=message):
            validate.images(given)


def test_targets_broadcast_and_range():
    assert validate.targets(3, 2).tolist() == [3, 3]
    assert validate.targets(torch.tensor(1), 3).tolist() == [1, 1, 1]
    assert validate.targets([0, 2], 2).tolist() == [0, 2]
    with pytest.raises(ValueError, match="\\[0, 9\\]; got 10"):
        validate.targets(10, 1, num_classes=10)
    with pytest.raises(ValueError, match="\\[0, 9\\]; got -1"):
        validate.targets(torch.tensor([0, -1]), 2, num_classes=10)
    with pytest.raises(TypeError, match="integer class indices"):
        validate.targets(torch.tensor([0.5]), 1)
    with pytest.raises(ValueError, match="3 entries but there are 2 images"):
        validate.targets(torch.tensor([0, 1, 2]), 2)


def test_numbers_and_choices():
    assert validate.positive(0.5, "eps") == 0.5
    with pytest.raises(ValueError, match="eps must be > 0; got -1"):
        validate.positive(-1, "eps")
    with pytest.raises(ValueError, match="steps must be >= 1; got 0"):
        validate.positive_int(0, "steps")
    with pytest.raises(TypeError, match="steps must be an int"):
        validate.positive_int(2.5, "steps")
    with pytest.raises(ValueError, match="norm must be one of \\['l2', 'linf'\\]; got 'l1'"):
        validate.choice("l1", "norm", {"linf", "l2"})


def test_describe_value_names_type_dtype_and_shape():
    """The phrase after "got" in every message (exercise modules build their own messages with it)."""
    assert validate.describe_value(torch.zeros(2, 3)) == "a torch.float32 tensor of shape (2, 3)"
    assert validate.describe_value(np.zeros((4,), dtype=np.uint8)) == "a numpy.ndarray of shape (4,)"
    assert validate.describe_value([1, 2]) == "a builtins.list"
