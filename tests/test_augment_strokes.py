"""Writing conventions drawn by label, and coarse-scan effects."""

import numpy as np
import pytest

from tinynet.augment import Augmenter
from tinynet.augment_scan import area_matrix, coarse_scan, linear_matrix
from tinynet.augment_strokes import (
    StrokeConventions,
    break_strokes,
    digit_geometry,
    draw_segments,
    shift_rows,
)

# StrokeConventions' u columns: 0 draw?, 1 which stroke, 2-5 size and angle.
FLAG, FOOT, BOTH = 0.1, 0.5, 0.9


def one(n=1):
    """A plain 1: a vertical bar, rows 4-23, columns 13-14."""
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 4:24, 13:15] = 1.0
    return x


def seven(n=1):
    """A 7: a top bar and a stem going down-left from its right end."""
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 4:6, 8:21] = 1.0
    for r in range(6, 24):
        c = round(20 - (r - 6) * 6 / 17)
        x[:, r, c - 1 : c + 1] = 1.0
    return x


def four(n=1):
    """An open 4: a left arm, a crossbar at row 16, a right stem from the top."""
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 4:17, 8:10] = 1.0
    x[:, 15:17, 8:22] = 1.0
    x[:, 4:24, 17:19] = 1.0
    return x


def conventions(x, label, which, size=0.5):
    u = np.full((len(x), 6), size)
    u[:, 0], u[:, 1] = 0.0, which
    labels = np.full(len(x), label)
    return StrokeConventions(prob=1.0)(x, labels, u)


def new_ink(before, after):
    return (after > 0.5) & (before < 0.5)


def test_geometry_of_a_bar():
    g = digit_geometry(one())
    assert (g.top[0], g.bottom[0], g.left[0], g.right[0]) == (4, 23, 13, 14)
    assert 1.6 <= g.width[0] <= 2.4 and g.peak[0] == 1.0


def test_draw_segment_has_the_requested_width_and_keeps_ink():
    x = np.zeros((2, 28, 28), np.float32)
    x[:, 0, 0] = 0.7
    start = np.array([[14.0, 4.0], [4.0, 10.0]])
    end = np.array([[14.0, 24.0], [20.0, 10.0]])
    out = draw_segments(x, start, end, np.array([3.0, 1.0]), np.array([1.0, 0.5]))
    assert out[0, 0, 0] == np.float32(0.7)
    assert np.count_nonzero(out[0, :, 14] == 1.0) == 3  # 3 px across, fully inked
    assert out[1, 12, 10] == 0.5 and out[1, 12, 12] == 0.0


def test_flag_goes_down_left_from_the_top_of_a_one():
    x = one()
    added = new_ink(x, conventions(x, 1, FLAG))[0]
    rows, cols = np.nonzero(added)
    assert rows.size and cols.max() < 13 and rows.min() >= 4 and rows.max() <= 14
    # Farther left is lower: an up-stroke, not a horizontal 7-like bar.
    assert rows[cols.argmin()] > rows[cols.argmax()]


def test_foot_spreads_both_ways_at_the_bottom_of_a_one():
    x = one()
    added = new_ink(x, conventions(x, 1, FOOT))[0]
    rows, cols = np.nonzero(added)
    assert rows.min() >= 20 and cols.min() < 11 and cols.max() > 16


def test_flag_and_foot_together():
    x = one()
    added = new_ink(x, conventions(x, 1, BOTH))[0]
    assert added[:12].any() and added[20:].any()


def test_bar_crosses_the_stem_of_a_seven_halfway_down():
    x = seven()
    added = new_ink(x, conventions(x, 7, 0.0))[0]
    rows, cols = np.nonzero(added)
    assert 10 <= rows.min() and rows.max() <= 20
    stem = np.nonzero(x[0, 14] > 0.5)[0]
    assert cols.min() < stem.min() and cols.max() > stem.max()


def test_serif_hangs_from_the_left_end_of_a_sevens_top():
    x = seven()
    added = new_ink(x, conventions(x, 7, 0.5))[0]
    rows, cols = np.nonzero(added)
    assert rows.min() >= 5 and rows.max() <= 12 and cols.max() <= 12


def test_four_gets_a_closed_top():
    x = four()
    added = new_ink(x, conventions(x, 4, 0.0))[0]
    # The new stroke joins the stem top (row 4, col 17) to the crossbar's left
    # end (row 15, col 8), through the gap between the arm and the stem.
    assert added[4:16, 10:17].sum() >= 8
    assert not added[18:].any()


@pytest.mark.parametrize("size, arm_kept", [(0.5, False), (0.9, True)])
def test_closed_four_loses_the_open_arm_most_of_the_time(size, arm_kept):
    out = conventions(four(), 4, 0.0, size)[0]
    assert (out[5:9, 8] > 0.5).all() == arm_kept  # the arm, left of the diagonal
    assert (out[15:17, 12:22] > 0.5).all()  # the crossbar stays


def nine():
    """A 9: a closed loop on rows 4-13 and a straight stem down to row 23."""
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 4:6, 9:19] = x[0, 12:14, 9:19] = 1.0  # top and bottom of the loop
    x[0, 4:14, 9:11] = 1.0
    x[0, 4:24, 17:19] = 1.0  # stem to the bottom
    return x


def ink_centre(row):
    return (row * np.arange(row.size)).sum() / row.sum()


def test_nine_gets_a_tail_to_the_left_of_its_stem():
    x = nine()
    added = new_ink(x, conventions(x, 9, 0.0))[0]
    rows, cols = np.nonzero(added)
    assert rows.min() >= 17 and cols.min() <= 14


def test_nine_with_a_curved_stem_bends_more_the_lower_it_goes():
    x = nine()
    out = conventions(x, 9, 0.5)[0]  # the second convention of a 9
    np.testing.assert_array_equal(out[:14], x[0, :14])  # the loop stays
    offsets = [ink_centre(x[0, r]) - ink_centre(out[r]) for r in (16, 19, 23)]
    assert 0 < offsets[0] < offsets[1] < offsets[2]  # a curve to the left
    assert offsets[2] > 0.3 * 10  # at least 30% of the digit's width
    assert out.sum() == pytest.approx(x.sum(), rel=0.02)  # moved, not redrawn


def test_rho_like_nine_has_its_stem_left_of_the_loop():
    x = nine()
    out = conventions(x, 9, 0.9)[0]  # the third convention of a 9
    g_before, g_after = digit_geometry(x), digit_geometry(out[None])
    assert (g_after.left[0], g_after.right[0]) == (g_before.left[0], g_before.right[0])
    assert ink_centre(out[20]) < ink_centre(out[8])  # the stem now on the left
    assert ink_centre(x[0, 20]) > ink_centre(x[0, 8])
    assert out.sum() == pytest.approx(x.sum())


def test_four_with_a_high_arm_loses_the_top_of_its_stem():
    x = four()
    out = conventions(x, 4, 0.9)[0]  # the second convention of a 4
    stem = out[:, 17:19] > 0.5
    first_stem_row = np.flatnonzero(stem.any(axis=1)).min()
    assert 4 + 0.15 * 20 <= first_stem_row <= 4 + 0.6 * 20 + 1
    np.testing.assert_array_equal(out[:, :12], x[0, :, :12])  # the arm stays
    np.testing.assert_array_equal(out[16:], x[0, 16:])  # so does the foot of the stem


def test_shift_rows_moves_each_row_by_its_own_amount():
    x = np.zeros((1, 4, 10), np.float32)
    x[0, :, 4] = 1.0
    out = shift_rows(x, np.array([[0.0, 2.0, -3.0, 0.5]]))[0]
    assert out[0, 4] == 1.0 and out[1, 6] == 1.0 and out[2, 1] == 1.0
    np.testing.assert_allclose(out[3, 4:6], [0.5, 0.5])
    assert shift_rows(x, np.array([[20.0, 0, 0, 0]]))[0, 0].sum() == 0  # left the frame


def test_break_strokes_cuts_gaps_on_ink_only():
    x = one(64)
    u = np.random.default_rng(0).random((64, 2, 3))
    out = break_strokes(x, u)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out <= x).all()  # ink only fades
    lost = (x - out).sum(axis=(1, 2))
    assert (lost > 0).all()
    # the 1 is cut across: some rows of its stem lose most of their ink
    faded_rows = (out[:, 4:24, 13:15].sum(axis=2) < 0.8).sum(axis=1)
    assert (faded_rows >= 1).all() and (faded_rows <= 2 * 6).all()
    # a NaN gap is not cut, and a blank image stays blank
    u[:, :, 0] = np.nan
    np.testing.assert_array_equal(break_strokes(x, u), x)
    blank = np.zeros((2, 28, 28), np.float32)
    np.testing.assert_array_equal(break_strokes(blank, u[:2]), blank)


def test_augmenter_gap_probability_selects_the_images():
    x = one(400)
    still = {"max_shift": 0, "max_rotation": 0, "scale_range": (1, 1),
             "aspect_range": (1, 1), "max_shear": 0, "stroke_prob": 0}  # fmt: skip
    aug = Augmenter(**still, gap_prob=0.3)
    out = aug(x, np.random.default_rng(0))
    cut = np.any(out != x, axis=(1, 2))
    assert 0.2 < cut.mean() < 0.4
    assert aug.get_config()["gap_prob"] == 0.3
    with pytest.raises(ValueError, match="gap_prob"):
        Augmenter(gap_prob=1.5)


@pytest.mark.parametrize("label", [0, 2, 3, 5, 6, 8])
def test_other_labels_are_never_changed(label):
    x = one(4)
    np.testing.assert_array_equal(conventions(x, label, FLAG), x)


def test_probability_and_label_select_the_images():
    x = one(400)
    labels = np.tile([1, 2], 200)
    u = np.random.default_rng(0).random((400, 6))
    out = StrokeConventions(prob=0.3)(x, labels, u)
    changed = np.any(out != x, axis=(1, 2))
    assert not changed[labels == 2].any()
    assert 0.2 < changed[labels == 1].mean() < 0.4


def test_augmenter_with_conventions_is_deterministic_and_in_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([one(8), seven(8), four(8)])
    labels = np.repeat([1, 7, 4], 8)
    aug = Augmenter(convention_prob=0.6, coarse_prob=0.5, stroke_prob=0.3)
    a = aug(x, np.random.default_rng(3), labels)
    b = aug(x, np.random.default_rng(3), labels)
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.array_equal(a, aug(x, rng, labels))
    assert aug(x[..., None], rng, labels).shape == (24, 28, 28, 1)


def test_augmenter_needs_labels_only_for_conventions():
    x = one(2)
    rng = np.random.default_rng(0)
    assert not Augmenter(coarse_prob=1.0).uses_labels
    Augmenter(coarse_prob=1.0)(x, rng)
    aug = Augmenter(convention_prob=0.5)
    assert aug.uses_labels
    with pytest.raises(ValueError, match="labels"):
        aug(x, rng)
    with pytest.raises(ValueError, match=r"\(2,\) integers"):
        aug(x, rng, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="coarse_resolution"):
        Augmenter(coarse_resolution=(2.5, 8))


def test_resampling_matrices():
    np.testing.assert_allclose(area_matrix(7, 28).sum(axis=1), 1.0)
    np.testing.assert_allclose(area_matrix(11, 28).sum(axis=0).sum(), 11.0)
    np.testing.assert_array_equal(linear_matrix(9, 9), np.eye(9))
    np.testing.assert_allclose(linear_matrix(40, 13).sum(axis=1), 1.0)
    ramp = np.arange(5.0)
    np.testing.assert_allclose(linear_matrix(10, 5) @ ramp, np.clip(
        (np.arange(10) + 0.5) / 2 - 0.5, 0, 4))  # fmt: skip


def test_coarse_scan_gives_the_readers_input_for_that_scan():
    x = np.zeros((4, 28, 28), np.float32)
    x[:, 6:20, 10:15] = 1.0  # 14 px tall, off centre: the reader re-centres it
    n = len(x)
    binary = np.arange(n) % 2 > 0
    out = coarse_scan(x, np.array([8, 10, 12, 16]), np.full(n, 0.4), binary)
    rows = np.nonzero((out > 0.5).any(axis=2))
    for i in range(n):
        r = rows[1][rows[0] == i]
        assert r.max() - r.min() + 1 in (19, 20, 21)  # MNIST's 20-px box
        mass = out[i].sum()
        assert abs((out[i].sum(axis=1) * np.arange(28)).sum() / mass - 14) < 1.0
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_coarse_scan_turns_a_hairline_into_coarse_pixels():
    x = np.zeros((2, 28, 28), np.float32)
    x[:, 4:24, 14] = 1.0  # 1 px wide
    out = coarse_scan(x, np.array([8, 8]), np.array([0.2, 0.2]), np.array([1, 0]) > 0)
    widths = (out[:, 14] > 0.5).sum(axis=1)
    assert np.all(widths >= 2)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_a_grey_coarse_scan_keeps_a_faint_stroke_faint():
    x = np.zeros((2, 28, 28), np.float32)
    x[:, 4:24, 14:18] = 1.0  # a strong bar
    x[:, 10:12, 4:14] = 0.25  # a faint arm touching it
    grey, binary = coarse_scan(
        x, np.array([16, 16]), np.array([0.4, 0.4]), np.array([False, True])
    )
    for out, kept in ((grey, True), (binary, False)):
        bar = np.flatnonzero(out.max(axis=0) > 0.9)
        arm = out[:, : bar.min() - 1].max()  # left of the bar and its soft edge
        assert (0.1 < arm < 0.6) if kept else arm < 0.05


def test_a_scan_that_loses_all_ink_keeps_the_image():
    x = np.zeros((1, 28, 28), np.float32)
    out = coarse_scan(x, np.array([8]), np.array([0.5]), np.array([True]))
    np.testing.assert_array_equal(out, x)
