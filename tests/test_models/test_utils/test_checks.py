# Copyright (c) soft_mm contributors. All rights reserved.
"""The argument checks of the SOFT layers: each error names the argument."""
import numpy as np
import pytest

from soft_mm.models.utils.checks import (check_attn_impl, check_int,
                                         check_int_list, check_landmark_grid,
                                         check_rate, check_real)


def test_check_int():
    assert check_int('X', 'n', np.int64(3)) == 3
    assert check_int('X', 'k', 5, odd=True) == 5
    for bad, error in [(True, TypeError), (2.0, TypeError), (0, ValueError)]:
        with pytest.raises(error, match='X: n must be an int >= 1'):
            check_int('X', 'n', bad)
    with pytest.raises(ValueError, match='k must be an odd int'):
        check_int('X', 'k', 4, odd=True)


def test_check_int_list():
    assert check_int_list('X', 'depths', (1, np.int32(2)), 2) == [1, 2]
    with pytest.raises(ValueError, match='needs 3 values'):
        check_int_list('X', 'depths', [1, 2], 3)
    with pytest.raises(ValueError, match=r'depths\[1\]'):
        check_int_list('X', 'depths', [1, 0], 2)


def test_check_real_and_rate():
    assert check_real('X', 'eps', 1e-6, 0., low_open=True) == 1e-6
    with pytest.raises(ValueError, match=r'\(0.0, inf\)'):
        check_real('X', 'eps', 0., 0., low_open=True)
    with pytest.raises(ValueError, match='must be in'):
        check_real('X', 'eps', float('nan'))
    assert check_rate('X', 'rate', 0.) == 0.
    with pytest.raises(ValueError, match=r'\[0.0, 1.0\)'):
        check_rate('X', 'rate', 1.)


def test_check_landmark_grid():
    assert check_landmark_grid('X', None) is None
    assert check_landmark_grid('X', 7) == (7, 7)
    assert check_landmark_grid('X', [2, 3]) == (2, 3)
    with pytest.raises(TypeError, match='landmark_grid'):
        check_landmark_grid('X', (1, 2, 3))


def test_check_attn_impl():
    assert check_attn_impl('X', 'reference') == 'reference'
    with pytest.raises(ValueError, match="X: unknown attn_impl 'gpu'"):
        check_attn_impl('X', 'gpu')
