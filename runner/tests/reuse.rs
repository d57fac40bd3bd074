//! What the executor keeps between instances changes no observation: every shipped instance
//! gives the same observation with `reuse` off (each instance creates and closes all of its
//! objects), with `reuse` on in order, again with everything already kept (programs from the
//! cache, maps taken back), and in the reverse order (each instance after different
//! neighbours). Needs root, like the kernel tests; without it the test says so.

use std::path::Path;

use bpfcase::case;
use bpfcase::exec::{Env, Observation};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn instances() -> Result<Vec<case::Instance>, Failed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let files = case::discover(&[dir]).map_err(|e| Failed::from(e.to_string()))?;
    let mut all = Vec::new();
    for f in files {
        let c = case::load(&f).map_err(|e| Failed::from(e.to_string()))?;
        all.extend(c.instances);
    }
    Ok(all)
}

fn compare(pass: &str, fresh: &[Observation], got: &[Observation]) -> Result<(), Failed> {
    for (a, b) in fresh.iter().zip(got) {
        if a != b {
            return Err(format!(
                "{pass}: {} differs from its run without reuse:\n  without: {a:?}\n  with:    {b:?}",
                a.id
            )
            .into());
        }
    }
    Ok(())
}

fn observations_do_not_change() -> Result<Completion, Failed> {
    if let Some(why) = bpfcase::exec::host_unavailable() {
        return Ok(Completion::ignored_with(why));
    }
    let all = instances()?;
    let fresh: Vec<Observation> = {
        let mut env = Env::new();
        env.reuse = false;
        all.iter().map(|i| env.run(i)).collect()
    };
    let mut env = Env::new();
    let first: Vec<Observation> = all.iter().map(|i| env.run(i)).collect();
    compare("first pass", &fresh, &first)?;
    env.reset_timings();
    let again: Vec<Observation> = all.iter().map(|i| env.run(i)).collect();
    compare("second pass", &fresh, &again)?;
    let counts = env.timings().counts;
    // The second pass must have run on kept objects, or this test checks nothing.
    if counts.progs_reused == 0 || counts.maps_reused == 0 || counts.result_maps_reused == 0 {
        return Err(format!("the second pass reused nothing: {counts:?}").into());
    }
    if counts.maps_dropped > 0 {
        return Err(format!("kept maps were found not empty: {counts:?}").into());
    }
    let mut reversed: Vec<Observation> = all.iter().rev().map(|i| env.run(i)).collect();
    reversed.reverse();
    compare("reverse order", &fresh, &reversed)?;
    eprintln!(
        "{} instances, 4 passes; second pass: {} of {} loads and {} of {} maps reused",
        all.len(),
        counts.progs_reused,
        counts.progs_reused + counts.progs_loaded,
        counts.maps_reused,
        counts.maps_reused + counts.maps_created
    );
    Ok(Completion::Completed)
}

fn main() {
    let mut args = Arguments::from_args();
    // On the main thread, where the executor keeps objects between instances.
    args.test_threads = Some(1);
    libtest_mimic::run(
        &args,
        vec![Trial::ignorable_test(
            "observations_do_not_change",
            observations_do_not_change,
        )],
    )
    .exit();
}
