//! Figure 8b's code path on a tiny size: a parent fanning out to 3 children, run by 1 and 2
//! worker processes of the `durable-bench` binary on one SQLite file.

use std::path::Path;

use durable_bench::figures::composition::fan_out_once;

#[test]
fn a_small_fan_out_runs_on_one_and_two_processes() {
    let exe = Path::new(env!("CARGO_BIN_EXE_durable-bench"));
    let dir = std::env::temp_dir().join(format!("durable-bench-fan-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for workers in [1, 2] {
        let (_, reports, _) = fan_out_once(exe, &dir.join(format!("{workers}.db")), workers, 3).unwrap();
        assert_eq!(reports.len(), workers);
        let commits: u64 = reports.iter().map(|r| r.commits).sum();
        assert!(commits >= 3 * 4, "each child commits its 3 steps and its end at least: {reports:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
