//! The run pipeline: the one loop that runs a selection of cases on kernels — the running
//! kernel natively, others in QEMU guests, a few at a time — and tells a consumer what happens
//! as [`Event`]s, on the caller's thread, while it happens. Human output, JSON lines, the
//! progress display, report files and tests are consumers; the whole run is also returned as
//! [`Results`], the input of every report.
//!
//! Owns: kernel supply order, scheduling guests and the host run, turning what a guest sent
//! into verdicts and kernel identities, shards. Must not: print (consumers do), or decide exit
//! statuses.

mod host;
mod kernel;
pub mod schedule;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Mutex;

use crate::case::Case;
use crate::results::{self, KernelRun, Plan as ResultsPlan, Results, Runner, Shard};
use crate::vm::kernels::{self, Kernel, KernelError, KernelSpec, Manifest};
use crate::vm::{self, Options};

pub use host::{breakdown, identity as host_identity, run_instances, secs};
pub use kernel::failed;

/// What to run.
pub struct Plan<'a> {
    pub kernels: Vec<KernelSpec>,
    /// Loaded and filtered, in the order given.
    pub cases: &'a [Case],
    /// The instance filters the cases were loaded with (guests apply them again).
    pub filters: Vec<String>,
    /// Pinned kernel versions.
    pub manifest: Option<Manifest>,
    /// How guests start; `options.cache` is where kernels are kept.
    pub options: Options,
    /// Guests running at the same time (the host runs besides them).
    pub jobs: usize,
    pub shard: Option<Shard>,
    /// How a kernel that cannot be had is described.
    pub explain: fn(&KernelError) -> String,
}

/// What happens, in order for each kernel (kernels interleave).
#[derive(Debug)]
pub enum Event {
    /// The kernel's image is at hand (downloaded if needed), with warnings, or it cannot be
    /// had (then `KernelDone` follows at once).
    Resolved {
        kernel: usize,
        spec: String,
        warnings: Vec<String>,
        error: Option<String>,
    },
    /// It starts running `instances` instances.
    Started { kernel: usize, instances: usize },
    /// A guest's runner said hello.
    Booted { kernel: usize },
    /// `done` instances have reported so far.
    Progress { kernel: usize, done: usize },
    /// One instance's result (the host's as it happens, a guest's when the guest ends).
    Instance {
        kernel: usize,
        result: Box<results::InstanceResult>,
    },
    /// Something went wrong with the kernel itself (a panic, an oops, a hang, a guest that
    /// died, an unusable kernel), as said in its run's `problems` or `unusable`.
    Fault { kernel: usize, message: String },
    /// Everything about one kernel. `notes` are for the user (e.g. the KVM verdict),
    /// `console_tail` the guest console's last lines.
    KernelDone {
        kernel: usize,
        run: Box<KernelRun>,
        notes: Vec<String>,
        console_tail: String,
    },
}

/// Runs the plan, calling `sink` with every event on this thread, and returns the results in
/// plan order.
pub fn run(plan: &Plan<'_>, sink: &mut dyn FnMut(&Event)) -> Results {
    let files: Vec<PathBuf> = plan.cases.iter().map(|c| c.file.clone()).collect();
    let selection: Vec<(usize, Vec<usize>)> = match plan.shard {
        Some(s) => s.select(plan.kernels.len(), plan.cases.len()),
        None => (0..plan.kernels.len())
            .map(|k| (k, (0..plan.cases.len()).collect()))
            .collect(),
    };
    let cache = plan
        .options
        .cache
        .clone()
        .unwrap_or_else(kernels::cache_dir);

    let (tx, rx) = mpsc::channel::<Event>();
    let runs: Vec<Mutex<Option<KernelRun>>> = selection.iter().map(|_| Mutex::new(None)).collect();
    let store = |slot: usize, run: KernelRun| {
        *runs[slot].lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
    };
    let cases_of =
        |slot: usize| -> Vec<&Case> { selection[slot].1.iter().map(|&c| &plan.cases[c]).collect() };
    let mut costs = schedule::Costs::load(&cache);
    let order = schedule::order(
        &costs,
        &selection
            .iter()
            .map(|(k, cs)| {
                let n = cs.iter().map(|&c| plan.cases[c].instances.len()).sum();
                (plan.kernels[*k].to_string(), n)
            })
            .collect::<Vec<_>>(),
    );
    // Guests start as soon as their kernel is at hand, `jobs` at a time; the host runs
    // beside them on a thread of its own.
    let (work_tx, work_rx) = mpsc::channel::<(usize, Kernel)>();
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|s| {
        for _ in 0..plan.jobs.max(1) {
            let (tx, work_rx, store, cases_of) = (tx.clone(), &work_rx, &store, &cases_of);
            let selection = &selection;
            s.spawn(move || loop {
                let next = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((slot, kern)) = next else { break };
                let k = selection[slot].0;
                let run = kernel::guest(k, &plan.kernels[k], &kern, &cases_of(slot), plan, &tx);
                store(slot, run);
            });
        }
        // Kernel supply runs one at a time (apt), the longest expected guest first.
        let (supply_tx, store, selection, order, cache) =
            (tx.clone(), &store, &selection, &order, &cache);
        s.spawn(move || {
            let tx = supply_tx;
            for &slot in order {
                let k = &selection[slot].0;
                let spec = &plan.kernels[*k];
                if *spec == KernelSpec::Host {
                    continue; // below, on this thread
                }
                let resolved = kernels::resolve(spec, plan.manifest.as_ref(), cache);
                let _ = tx.send(Event::Resolved {
                    kernel: *k,
                    spec: spec.to_string(),
                    warnings: resolved
                        .as_ref()
                        .ok()
                        .and_then(|r| r.as_ref().map(|k| k.warnings.clone()))
                        .unwrap_or_default(),
                    error: resolved.as_ref().err().map(plan.explain),
                });
                match resolved {
                    Ok(Some(kern)) => {
                        let _ = work_tx.send((slot, kern));
                    }
                    // Only `host` resolves to no image.
                    Ok(None) => {}
                    Err(e) => {
                        let run = kernel::failed(spec, (plan.explain)(&e));
                        let _ = tx.send(Event::KernelDone {
                            kernel: *k,
                            run: Box::new(run.clone()),
                            notes: Vec::new(),
                            console_tail: String::new(),
                        });
                        store(slot, run);
                    }
                }
            }
            drop(work_tx);
        });
        drop(tx);
        // The running kernel runs on the calling thread: its task is the one user space names
        // by this process's pidfd ("current" = "self"). Other kernels' events are passed on
        // between its instances.
        for (slot, (k, _)) in selection.iter().enumerate() {
            if plan.kernels[*k] != KernelSpec::Host {
                continue;
            }
            let mut pass_on = |e: Event| {
                sink(&e);
                while let Ok(other) = rx.try_recv() {
                    sink(&other);
                }
            };
            pass_on(Event::Resolved {
                kernel: *k,
                spec: "host".into(),
                warnings: Vec::new(),
                error: None,
            });
            store(slot, host::run(*k, &cases_of(slot), &mut pass_on));
        }
        for e in rx {
            sink(&e);
        }
    });

    let kernels: Vec<KernelRun> = runs
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    for k in kernels.iter().filter(|k| k.identity.spec != "host") {
        costs.learn(&k.identity.spec, k);
    }
    costs.store(&cache);
    let ran: Vec<usize> = {
        let mut ids: Vec<usize> = selection.iter().flat_map(|(_, c)| c.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    Results {
        schema_version: results::SCHEMA_VERSION,
        runner: Runner::this(),
        plan: ResultsPlan {
            kernels: plan.kernels.iter().map(|k| k.to_string()).collect(),
            cases: files.iter().map(|f| f.display().to_string()).collect(),
            filters: plan.filters.clone(),
        },
        shard: plan.shard,
        cases: ran.iter().map(|&c| case_info(&plan.cases[c])).collect(),
        kernels,
    }
}

fn case_info(c: &Case) -> results::CaseInfo {
    results::CaseInfo {
        name: c.name.clone(),
        file: c.file.display().to_string(),
        about: c.about.clone(),
        instances: c.instances.iter().map(results::describe).collect(),
    }
}

/// A guest's progress as events of kernel `k`.
fn progress(k: usize, tx: &mpsc::Sender<Event>) -> impl Fn(vm::Progress) + '_ {
    move |p| {
        let _ = tx.send(match p {
            vm::Progress::Booted => Event::Booted { kernel: k },
            vm::Progress::Observed(done) => Event::Progress { kernel: k, done },
        });
    }
}
