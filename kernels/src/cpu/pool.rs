//! A persistent pool of worker threads for the CPU kernels.
//!
//! A decode step of a small model runs a few hundred matmuls of well under a millisecond each,
//! so per-op fork/join (spawning tasks, waking a scheduler, stealing) is a visible share of the
//! step. Here the workers are created once; a job is published by bumping an epoch, workers spin
//! briefly watching it and then park, and the caller runs share 0 itself and spins until the
//! others are done. Nothing is allocated per job.
//!
//! Threads: `RAYON_NUM_THREADS` (kept for compatibility) or every core the process may use.
//! `VLLM_CPU_OMP_THREADS_BIND=0-3` (or `0,2,4,6`) pins worker `i` to the `i+1`-th listed CPU and
//! leaves the first for the dispatching (engine) thread; `auto`, `nobind` or unset pins nothing.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long an idle worker watches for the next job before parking: long enough to cover the
/// glue between two matmuls of a step, short enough that an idle server costs nothing.
const SPIN: Duration = Duration::from_micros(200);

type JobFn = dyn Fn(usize, usize) + Sync;

struct Shared {
    epoch: AtomicUsize,
    /// The current job; written by the dispatcher before the epoch bump, read after it.
    job: UnsafeCell<Option<*const JobFn>>,
    remaining: AtomicUsize,
    panicked: AtomicBool,
    sleeping: Vec<AtomicBool>,
}

// SAFETY: `job` is written only by the dispatcher while it holds `WorkerPool::dispatch` and no
// job is in flight (all workers have decremented `remaining` for the previous epoch), and read by
// workers only between seeing a new epoch (Acquire, after the write's Release) and decrementing
// `remaining`, during which the dispatcher does not touch it.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of worker threads that run jobs split into `threads()` shares.
pub struct WorkerPool {
    shared: Arc<Shared>,
    threads: Vec<Thread>,
    /// Serialises dispatchers (tests call kernels from many threads).
    dispatch: Mutex<()>,
    bound_cpus: Vec<usize>,
}

impl WorkerPool {
    /// A pool running jobs on `threads` threads (the caller plus `threads - 1` workers), worker
    /// `i` pinned to `bind[i + 1]` when `bind` is not empty.
    pub fn new(threads: usize, bind: &[usize]) -> WorkerPool {
        let workers = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            remaining: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let sh = Arc::clone(&shared);
            let cpu = bind.get(i + 1).copied();
            let spawned = std::thread::Builder::new()
                .name(format!("vllm-cpu-{}", i + 1))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_current_thread(cpu);
                    }
                    worker_loop(&sh, i, workers + 1)
                });
            match spawned {
                Ok(h) => handles.push(h.thread().clone()),
                // Out of threads: run with fewer workers rather than fail the server.
                Err(_) => break,
            }
        }
        if handles.len() < workers {
            // The job count is fixed by `threads`: rebuild at the size that started.
            return WorkerPool::new(handles.len() + 1, bind);
        }
        WorkerPool {
            shared,
            threads: handles,
            dispatch: Mutex::new(()),
            bound_cpus: bind.to_vec(),
        }
    }

    /// Threads a job is split over (workers + the caller).
    pub fn threads(&self) -> usize {
        self.threads.len() + 1
    }

    /// CPUs the workers were pinned to (empty: not pinned).
    pub fn bound_cpus(&self) -> &[usize] {
        &self.bound_cpus
    }

    /// Runs `f(share, shares)` for every share in `0..threads()`, share 0 on the calling thread,
    /// and returns when all are done. A panic in any share is re-raised here.
    pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        let n = self.threads();
        if n == 1 {
            f(0, 1);
            return;
        }
        // A poisoned lock only means an earlier job panicked; the pool itself is consistent.
        let _guard = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        let sh = &*self.shared;
        // SAFETY: erasing the lifetime is sound because this function does not return before
        // every worker has finished with the pointer (`remaining` reaches 0 below).
        let erased: *const JobFn =
            unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), &'static JobFn>(f) };
        // SAFETY: see `Shared`: no job is in flight while we hold `dispatch`.
        unsafe { *sh.job.get() = Some(erased) };
        sh.remaining.store(n - 1, Ordering::SeqCst);
        sh.epoch.fetch_add(1, Ordering::SeqCst);
        for (t, sleeping) in self.threads.iter().zip(&sh.sleeping) {
            if sleeping.load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        let start = Instant::now();
        while sh.remaining.load(Ordering::Acquire) != 0 {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: every worker is done with this epoch's job.
        unsafe { *sh.job.get() = None };
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if sh.panicked.swap(false, Ordering::SeqCst) {
            panic!("a CPU kernel worker panicked");
        }
    }

    /// Splits `0..n` into `threads()` contiguous ranges whose bounds are multiples of `align`
    /// (except the end) and runs `f` on each non-empty one.
    pub fn for_ranges(&self, n: usize, align: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let align = align.max(1);
        let units = n.div_ceil(align);
        let shares = self.threads().min(units.max(1));
        if shares <= 1 {
            if n > 0 {
                f(0..n);
            }
            return;
        }
        self.run(&|share, _| {
            if share >= shares {
                return;
            }
            let u0 = units * share / shares;
            let u1 = units * (share + 1) / shares;
            let (r0, r1) = ((u0 * align).min(n), (u1 * align).min(n));
            if r0 < r1 {
                f(r0..r1);
            }
        });
    }
}

fn worker_loop(sh: &Shared, index: usize, shares: usize) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut epoch = sh.epoch.load(Ordering::Acquire);
        while epoch == seen {
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                sh.sleeping[index].store(true, Ordering::SeqCst);
                if sh.epoch.load(Ordering::SeqCst) == seen {
                    std::thread::park();
                }
                sh.sleeping[index].store(false, Ordering::SeqCst);
            }
            epoch = sh.epoch.load(Ordering::Acquire);
        }
        seen = epoch;
        // SAFETY: see `Shared`: the job pointer is valid until we decrement `remaining`.
        if let Some(job) = unsafe { *sh.job.get() } {
            let job = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| job(index + 1, shares))).is_err() {
                sh.panicked.store(true, Ordering::SeqCst);
            }
        }
        sh.remaining.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(target_os = "linux")]
fn pin_current_thread(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET bounds-checks the index against
    // the set size; sched_setaffinity(0, ..) only affects this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing_free_warn(cpu);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_current_thread(_cpu: usize) {}

#[cfg(target_os = "linux")]
fn tracing_free_warn(cpu: usize) {
    // kernels has no logging dependency; this is rare enough for stderr.
    eprintln!("warning: VLLM_CPU_OMP_THREADS_BIND: could not pin a worker to CPU {cpu}");
}

/// `VLLM_CPU_OMP_THREADS_BIND` was not a CPU list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VLLM_CPU_OMP_THREADS_BIND={value}: expected `auto`, `nobind` or a CPU list such as `0-3` or `0,2,4`")]
pub struct BindError {
    pub value: String,
}

/// Parses `VLLM_CPU_OMP_THREADS_BIND`: `auto`/`nobind`/empty mean no pinning (an empty list).
pub fn parse_cpu_list(value: &str) -> Result<Vec<usize>, BindError> {
    let v = value.trim();
    if v.is_empty()
        || v.eq_ignore_ascii_case("auto")
        || v.eq_ignore_ascii_case("nobind")
        || v.eq_ignore_ascii_case("all")
    {
        return Ok(Vec::new());
    }
    let bad = || BindError {
        value: value.to_string(),
    };
    let mut out = Vec::new();
    for part in v.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Threads and binding from the environment: (threads, cpus to bind).
pub fn config_from_env() -> Result<(usize, Vec<usize>), BindError> {
    let bind = parse_cpu_list(&std::env::var("VLLM_CPU_OMP_THREADS_BIND").unwrap_or_default())?;
    let default = if bind.is_empty() {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        bind.len()
    };
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default);
    Ok((threads, bind))
}

static POOL: OnceLock<WorkerPool> = OnceLock::new();

/// Creates the process-wide pool from the environment (the server calls this at start-up so a
/// bad binding is reported); the kernels call it lazily otherwise.
pub fn init_from_env() -> Result<&'static WorkerPool, BindError> {
    if let Some(p) = POOL.get() {
        return Ok(p);
    }
    let (threads, bind) = config_from_env()?;
    Ok(POOL.get_or_init(|| WorkerPool::new(threads, &bind)))
}

/// The process-wide pool.
pub fn pool() -> &'static WorkerPool {
    POOL.get_or_init(|| {
        let (threads, bind) = config_from_env().unwrap_or_else(|_| {
            (
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                Vec::new(),
            )
        });
        WorkerPool::new(threads, &bind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_share_runs_once_per_job() {
        let pool = WorkerPool::new(3, &[]);
        for _ in 0..200 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|share, n| {
                assert_eq!(n, 3);
                hits[share].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn ranges_cover_everything_aligned() {
        let pool = WorkerPool::new(4, &[]);
        for (n, align) in [(0, 1), (1, 4), (10, 4), (1000, 16), (7, 1)] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.for_ranges(n, align, &|r| {
                assert!(r.start % align == 0);
                for i in r {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "n={n}");
        }
    }

    #[test]
    fn workers_wake_after_parking() {
        let pool = WorkerPool::new(2, &[]);
        std::thread::sleep(SPIN * 5);
        let count = AtomicUsize::new(0);
        pool.run(&|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_panicking_share_is_reported_and_the_pool_survives() {
        let pool = WorkerPool::new(2, &[]);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|share, _| assert!(share != 1, "boom"))
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(&|_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2, 5-6").unwrap(), vec![0, 2, 5, 6]);
        assert!(parse_cpu_list("auto").unwrap().is_empty());
        assert!(parse_cpu_list("nobind").unwrap().is_empty());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }
}
