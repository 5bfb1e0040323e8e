import pytest

from watchkeeper.geometry import xywh_iou


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((0.1, 0.1, 0.2, 0.4), (0.1, 0.1, 0.2, 0.4), 1.0),
    ((0, 0, 2, 1), (1, 0, 2, 1), 1 / 3),  # half of each overlaps
    ((0, 0, 1, 1), (0.25, 0.25, 0.5, 0.5), 0.25),  # one inside the other
    ((0, 0, 1, 1), (1, 0, 1, 1), 0.0),  # touching edges
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # both empty
])
def test_overlap_of_two_boxes_is_their_intersection_over_their_union(a, b, expected):
    assert xywh_iou(a, b) == pytest.approx(expected)
    assert xywh_iou(b, a) == pytest.approx(expected)
