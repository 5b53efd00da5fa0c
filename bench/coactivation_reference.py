"""The numpy / scikit-learn side of bench-coactivation.

Reads DIR/bits.npy (uint8 [features, tokens / 8], bits LSB first), DIR/pairs.npy (int64
[pairs, 2]) and DIR/init.npy (float32 [k, tokens], the k-means++ seeding sparsa chose), times (wall
clock and process CPU) all-pairs Hamming distances (one float32 BLAS product of the 0/1 matrix:
ham = |a| + |b| - 2 a.b, exact since every value stays below 2^24) and scikit-learn's KMeans
from that seeding, and writes DIR/reference.json.

usage: python3 coactivation_reference.py DIR
"""
import json
import os
import sys
import time

import numpy as np
import sklearn
from sklearn.cluster import KMeans


def main(folder):
    bits = np.load(os.path.join(folder, "bits.npy"))
    pairs = np.load(os.path.join(folder, "pairs.npy"))
    init = np.load(os.path.join(folder, "init.npy"))
    tokens = init.shape[1]

    t0 = time.perf_counter()
    a = np.unpackbits(bits, axis=1, bitorder="little")[:, :tokens].astype(np.float32)  # [features, tokens]
    unpack_seconds = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    counts = a.sum(axis=1)
    ham = a @ a.T
    ham *= -2
    ham += counts[:, None]
    ham += counts[None, :]
    hamming_seconds, hamming_cpu = time.perf_counter() - t0, time.process_time() - c0
    sample = ham[pairs[:, 0], pairs[:, 1]].astype(np.int64)
    row_sums = ham.sum(axis=1, dtype=np.float64).astype(np.int64)
    del ham

    km = KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=300, tol=1e-4, algorithm="lloyd")
    t0, c0 = time.perf_counter(), time.process_time()
    km.fit(a)
    kmeans_seconds, kmeans_cpu = time.perf_counter() - t0, time.process_time() - c0

    with open(os.path.join(folder, "reference.json"), "w") as out:
        json.dump({
            "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "cpus": os.cpu_count(),
            "unpack_seconds": unpack_seconds,
            "hamming_seconds": hamming_seconds,
            "hamming_cpu_seconds": hamming_cpu,
            "hamming_sample": sample.tolist(),
            "hamming_row_sums": row_sums.tolist(),
            "kmeans_seconds": kmeans_seconds,
            "kmeans_cpu_seconds": kmeans_cpu,
            "inertia": float(km.inertia_),
            "n_iter": int(km.n_iter_),
            "labels": km.labels_.astype(int).tolist(),
        }, out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
