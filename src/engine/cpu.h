/* CPU facts the engine's kernels depend on: instruction-set features
 * (detected once, at run time) and the machine's memory read bandwidth (the
 * ceiling of memory-bound decode). Knows nothing about models or kernels. */
#ifndef HEARTH_ENGINE_CPU_H
#define HEARTH_ENGINE_CPU_H

typedef struct {
  int avx2, fma, f16c;
  int avx512f, avx512bw, avx512vl, avx512dq;
  int avx512vnni; /* vpdpbusd on zmm/ymm (with avx512vl) */
  int avxvnni;    /* VEX-encoded vpdpbusd (AVX-VNNI) */
  int avx512bf16;
} cpu_features;

/* Fills *f with what this CPU supports (also checks OS support via the
 * compiler's cpu model, __builtin_cpu_supports). */
void cpu_detect(cpu_features *f);

/* Number of online CPUs (>= 1). */
int cpu_n_cpus(void);

/* Measures sustained memory read bandwidth in GB/s (1e9 bytes/s) by
 * streaming a buffer much larger than the caches with one thread per online
 * CPU; takes well under a second. Returns a value <= 0 on failure
 * (allocation, threads). */
double cpu_measure_read_bandwidth_gbs(void);

/* The same with an explicit thread count (>= 1). */
double cpu_measure_read_bandwidth_gbs_n(int n_threads);

#endif
