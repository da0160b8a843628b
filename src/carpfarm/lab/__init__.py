"""What the lab and the benchmarks conclude, with no lab needed to test it: requests judged against
carpfarm's routes (``judge``, for verify.yml and molecule), carpfarm-watch's log read back
(``watchlog``, for molecule) and the benchmarks' arithmetic (``bench``)."""
