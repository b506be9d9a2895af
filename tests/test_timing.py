"""StageTimer: exclusive stage times that add up to the wall-clock time."""

import time

from keysync.utils.timing import StageTimer


def test_nested_stages_are_taken_out_of_the_outer_one():
    timer = StageTimer()
    start = time.perf_counter()
    with timer("mux"):
        time.sleep(0.02)
        for _ in range(2):
            with timer("decode"):
                time.sleep(0.03)
                with timer("paste"):
                    time.sleep(0.01)
    wall = time.perf_counter() - start
    t = timer.totals
    assert 0.055 <= t["decode"] < 0.1
    assert 0.018 <= t["paste"] < 0.05
    assert 0.018 <= t["mux"] < 0.05
    assert abs(sum(t.values()) - wall) < 1e-3


def test_a_stage_that_raises_is_still_counted():
    timer = StageTimer()
    try:
        with timer("audio"):
            time.sleep(0.01)
            raise ValueError("bad input")
    except ValueError:
        pass
    with timer("audio"):
        pass
    assert timer.totals["audio"] >= 0.009
