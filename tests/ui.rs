//! Compile-time checks of `#[durable]`: each `ui/fail` case is one misuse, named after it, whose
//! `.stderr` must point at the user's code and say what to do; each `ui/pass` case must compile.
//!
//! Regenerate the expected output after an intended change with
//! `TRYBUILD=overwrite cargo test -p durable-tests --test ui`, then review every `.stderr` diff.
//!
//! The expected output must not depend on where the repository is checked out. A closure's type
//! names its file by absolute path, and rustc moves a label longer than 140 characters into a
//! `help`; so the closure case has a file name long enough that its labels are moved whatever
//! the path (a short name passed in one checkout and failed in a deeper one).

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail/*.rs");
    cases.pass("ui/pass/*.rs");
}
