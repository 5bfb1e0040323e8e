import numpy as np
import pytest

from watchkeeper.geometry import corners_iou, xywh_iou


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


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((0.1, 0.1, 0.2, 0.4), (0.1, 0.1, 0.2, 0.4), 1.0),
    ((0, 0, 2, 1), (1, 0, 2, 1), 1 / 3),
    ((0, 0, 1, 1), (0.25, 0.25, 0.5, 0.5), 0.25),
    ((0, 0, 1, 1), (1, 0, 1, 1), 0.0),
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
])
def test_corner_boxes_overlap_as_the_same_boxes_written_by_size(a, b, expected):
    """(x0, y0, x1, y1) boxes, one against several at once, agree with ``xywh_iou`` on the same boxes."""
    def corners(box):
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]

    found = corners_iou(np.array(corners(a), float), np.array([corners(b), corners(a)], float))
    assert found[0] == pytest.approx(expected) and found[1] == pytest.approx(1.0 if a[2] * a[3] else 0.0)
