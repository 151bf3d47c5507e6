//! Compile-time rules of `#[trellis::contract]`: every rejected construct
//! fails with a spanned, actionable error, and the full DSL compiles.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
