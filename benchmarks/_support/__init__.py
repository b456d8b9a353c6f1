"""The benchmarks' shared harness: processes and CPU/RSS sampling (``processes``),
percentiles and tables (``stats``), the loopback upstream (``upstream``), the embedded
PostgreSQL (``pgserver``)."""
