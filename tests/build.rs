//! Writes the random workflow bodies of `tests/generated.rs` (a property-style test): each body
//! twice, as a `#[durable]` workflow and as a plain `async fn` in which every `step!(name, e)`
//! is just `e`. The test runs both and crashes the workflow at every checkpoint.
//!
//! `DURABLE_GEN_CASES` (default 12) sets how many bodies, `DURABLE_GEN_SEED` (default 1) the
//! seed: `DURABLE_GEN_CASES=200 DURABLE_GEN_SEED=7 cargo test -p durable-tests --test generated`.

use std::fmt::Write;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Gen {
    rng: Rng,
    steps: usize,
    vars: Vec<String>,
    /// The variables a statement may assign (not loop variables).
    assignable: Vec<String>,
    fresh: usize,
    loops: usize,
}

impl Gen {
    /// A value: a literal, a variable in scope, a step, or (at the top) two of them combined.
    fn value(&mut self, depth: u32) -> String {
        match self.rng.below(if depth == 0 { 5 } else { 4 }) {
            0 | 1 => self.simple(),
            2 | 3 => {
                self.steps += 1;
                let arg = self.simple();
                format!("step!(\"s{}\", det({}, {arg}).await)?", self.steps, self.steps)
            }
            _ => format!("{}.wrapping_add({})", self.value(depth + 1), self.value(depth + 1)),
        }
    }

    /// A literal or a variable in scope.
    fn simple(&mut self) -> String {
        if self.vars.is_empty() || self.rng.below(2) == 0 {
            format!("{}u64", self.rng.below(50))
        } else {
            self.vars[self.rng.below(self.vars.len() as u64) as usize].clone()
        }
    }

    fn stmts(&mut self, out: &mut String, depth: u32, count: u64) {
        let (mark, assignable) = (self.vars.len(), self.assignable.len());
        for _ in 0..count {
            self.stmt(out, depth);
        }
        self.vars.truncate(mark);
        self.assignable.truncate(assignable);
    }

    fn stmt(&mut self, out: &mut String, depth: u32) {
        let choice = if depth >= 3 { self.rng.below(3) } else { self.rng.below(8) };
        match choice {
            0 | 1 => {
                self.fresh += 1;
                let value = self.value(0);
                let name = format!("v{}", self.fresh);
                writeln!(out, "let mut {name} = {value};").unwrap();
                self.vars.push(name.clone());
                self.assignable.push(name);
            }
            2 if !self.assignable.is_empty() => {
                let target = self.assignable[self.rng.below(self.assignable.len() as u64) as usize].clone();
                let value = self.value(0);
                writeln!(out, "{target} = {value}.wrapping_add({target});").unwrap();
            }
            2 => writeln!(out, "acc = acc.wrapping_add({});", self.value(0)).unwrap(),
            3 => {
                let cond = self.value(0);
                writeln!(out, "if {cond} % 2 == 0 {{").unwrap();
                let count = 1 + self.rng.below(2);
                self.stmts(out, depth + 1, count);
                writeln!(out, "}} else {{").unwrap();
                let count = self.rng.below(2);
                self.stmts(out, depth + 1, count);
                writeln!(out, "}}").unwrap();
            }
            4 => {
                self.loops += 1;
                let bound = 1 + self.rng.below(3);
                writeln!(out, "for i{} in 0..{bound}u64 {{", self.loops).unwrap();
                self.vars.push(format!("i{}", self.loops));
                let count = 1 + self.rng.below(2);
                self.stmts(out, depth + 1, count);
                self.vars.pop();
                writeln!(out, "}}").unwrap();
            }
            5 => {
                let scrutinee = self.value(0);
                writeln!(out, "match {scrutinee} % 3 {{ 0 => {{").unwrap();
                self.stmts(out, depth + 1, 1);
                writeln!(out, "}} 1 => {{ acc = acc.wrapping_add(1); }} _ => {{").unwrap();
                self.stmts(out, depth + 1, 1);
                writeln!(out, "}} }}").unwrap();
            }
            6 => {
                self.loops += 1;
                let bound = 1 + self.rng.below(3);
                let counter = format!("w{}", self.loops);
                writeln!(out, "let mut {counter} = 0u64; while {counter} < {bound} {{ {counter} += 1;").unwrap();
                let count = 1 + self.rng.below(2);
                self.stmts(out, depth + 1, count);
                writeln!(out, "if acc % 7 == 3 {{ break; }} }}").unwrap();
            }
            _ => {
                let value = self.value(0);
                writeln!(out, "if {value} % 11 == 5 {{ return Ok(acc.wrapping_add(n)); }}").unwrap();
            }
        }
    }
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DURABLE_GEN_CASES");
    println!("cargo::rerun-if-env-changed=DURABLE_GEN_SEED");
    let cases: usize = std::env::var("DURABLE_GEN_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let seed: u64 = std::env::var("DURABLE_GEN_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut out = String::new();
    let mut list = String::new();
    for case in 0..cases {
        let mut generator = Gen {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (case as u64 + 1)),
            steps: 0,
            vars: Vec::new(),
            assignable: Vec::new(),
            fresh: 0,
            loops: 0,
        };
        for _ in 0..4 {
            generator.rng.next();
        }
        let mut body = String::from("let mut acc = n;\n");
        for _ in 0..3 + generator.rng.below(4) {
            generator.stmt(&mut body, 0);
        }
        // The result depends on every variable still in scope.
        let sum: String = generator.vars.iter().map(|var| format!(".wrapping_add({var})")).collect();
        writeln!(body, "Ok(acc{sum})").unwrap();
        let plain = strip_steps(&body);
        writeln!(out, "/// Case {case} of seed {seed}.\n#[durable]\nasync fn durable_{case}(n: u64) -> Result<u64, WorkflowError> {{\n{body}}}\n").unwrap();
        writeln!(out, "async fn plain_{case}(n: u64) -> Result<u64, WorkflowError> {{\n{plain}}}\n").unwrap();
        writeln!(list, "    check(durable_{case}, |n| Box::pin(plain_{case}(n)), {case}).await;").unwrap();
    }
    writeln!(out, "pub async fn check_all() {{\n{list}}}").unwrap();
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("generated.rs");
    std::fs::write(path, out).unwrap();
}

/// `step!("sN", e)` becomes `plain_step(e)` (the error converted as `step!` converts it).
fn strip_steps(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(start) = rest.find("step!(\"") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "step!(\"".len()..];
        let comma = after.find("\", ").expect("a step's name");
        let inner = &after[comma + 3..];
        // The step's body runs to the parenthesis that closes `step!(`.
        let mut level = 1;
        let mut end = 0;
        for (index, c) in inner.char_indices() {
            match c {
                '(' => level += 1,
                ')' => {
                    level -= 1;
                    if level == 0 {
                        end = index;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push_str("plain_step(");
        out.push_str(&strip_steps(&inner[..end]));
        out.push(')');
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    out
}
