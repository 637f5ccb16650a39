import numpy as np

from astrobio.data.synthetic.rows import row_matmul


def test_row_matmul_equals_matmul_and_each_row_is_block_independent(rng):
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        a = rng.standard_normal((203, 9)).astype(dtype)
        for b in (rng.standard_normal((9, 17, 33)).astype(dtype), rng.random(9).astype(dtype)):
            full = row_matmul(a, b)
            expected = np.tensordot(a.astype(np.float64), b.astype(np.float64), axes=1)
            assert full.shape == expected.shape and full.dtype == dtype
            np.testing.assert_allclose(full, expected, rtol=tol, atol=tol * 10)
            for start, stop in ((0, 1), (5, 76), (64, 203)):
                np.testing.assert_array_equal(row_matmul(a[start:stop], b), full[start:stop])
