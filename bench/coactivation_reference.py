"""The numpy / scikit-learn side of bench-coactivation.

Reads DIR/bits.npy (uint8 [features, tokens / 8], bits LSB first), DIR/pairs.npy (int64
[pairs, 2]) and DIR/init.npy (float32 [k, tokens], the k-means++ seeding sparsa chose), times (wall
clock and process CPU) all-pairs Hamming distances (one float32 BLAS product of the 0/1 matrix:
ham = |a| + |b| - 2 a.b, exact since every value stays below 2^24) and scikit-learn's KMeans
from that seeding, and writes DIR/reference.json. Each of the two is timed REPEAT times (default
1; bench-coactivation passes its --repeat): the first run (what a script that calls it once pays)
and the run of median wall time are reported.

usage: python3 coactivation_reference.py DIR [REPEAT]
"""
import json
import os
import sys
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans


def repeated(repeat, run):
    """((wall, cpu) of the first run, (wall, cpu) of the run of median wall time) of `repeat` calls
    of run(), and the last result (each run computes the same; one result is held at a time, as
    sparsa's side does)."""
    runs, result = [], None
    for _ in range(repeat):
        result = None
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    return runs[0], sorted(runs)[len(runs) // 2], result


def hamming(a):
    counts = a.sum(axis=1)
    ham = a @ a.T
    ham *= -2
    ham += counts[:, None]
    ham += counts[None, :]
    return ham


def main(folder, repeat):
    bits = np.load(os.path.join(folder, "bits.npy"))
    pairs = np.load(os.path.join(folder, "pairs.npy"))
    init = np.load(os.path.join(folder, "init.npy"))
    tokens = init.shape[1]

    t0 = time.perf_counter()
    a = np.unpackbits(bits, axis=1, bitorder="little")[:, :tokens].astype(np.float32)  # [features, tokens]
    unpack_seconds = time.perf_counter() - t0

    hamming_first, hamming_median, ham = repeated(repeat, lambda: hamming(a))
    sample = ham[pairs[:, 0], pairs[:, 1]].astype(np.int64)
    row_sums = ham.sum(axis=1, dtype=np.float64).astype(np.int64)
    del ham

    def fit():
        return KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=300, tol=1e-4,
                      algorithm="lloyd").fit(a)

    kmeans_first, kmeans_median, km = repeated(repeat, fit)

    with open(os.path.join(folder, "reference.json"), "w") as out:
        json.dump({
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "cpus": os.cpu_count(),
            "unpack_seconds": unpack_seconds,
            "hamming_seconds": hamming_first,  # [wall, cpu]
            "hamming_median_seconds": hamming_median,
            "hamming_sample": sample.tolist(),
            "hamming_row_sums": row_sums.tolist(),
            "kmeans_seconds": kmeans_first,
            "kmeans_median_seconds": kmeans_median,
            "inertia": float(km.inertia_),
            "n_iter": int(km.n_iter_),
            "labels": km.labels_.astype(int).tolist(),
        }, out)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 1)
