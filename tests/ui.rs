//! Compile-time checks of `#[durable]`: each `ui/fail` case is one misuse, named after it, whose
//! `.stderr` must point at the user's code and say what to do; each `ui/pass` case must compile.
//!
//! Regenerate the expected output after an intended change with
//! `TRYBUILD=overwrite cargo test -p durable-tests --test ui`, then review every `.stderr` diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail/*.rs");
    cases.pass("ui/pass/*.rs");
}
