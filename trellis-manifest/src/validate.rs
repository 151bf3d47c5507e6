//! Semantic rules of a contract that the JSON Schema alone does not state.
//!
//! They run on the [`Manifest`] model. [`Rules::Format`] is what the
//! published format requires of any manifest (`trellis contract check`);
//! [`Rules::Dsl`] adds the conventions of what `#[trellis::contract]` emits,
//! and the proc macro maps each of its issues' paths back to a source span.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::json::Json;
use crate::manifest::*;
use crate::names;
use crate::pointer::{Want, resolve_pointer};

/// One violated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Manifest path, e.g. `["rpc", "Files.List", "input"]`.
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it in a contract module.
    pub help: Option<String>,
}

impl Issue {
    fn new(path: &[&str], message: impl Into<String>) -> Self {
        Issue {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The dotted path (`rpc."Files.List".input`).
    pub fn path_string(&self) -> String {
        self.path
            .iter()
            .map(|p| {
                if p.contains('.') {
                    format!("\"{p}\"")
                } else {
                    p.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Message plus fix, for compile errors.
    pub fn render_for_source(&self) -> String {
        match &self.help {
            Some(help) => format!("{}; {help}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path_string(), self.message)
    }
}

const DECLARE_SCHEMA: &str =
    "declare it in the contract module as a struct or enum with #[derive(Serialize, Deserialize)]";

/// Which rule set a manifest is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// The published format: any non-empty surface name, built-in error
    /// types and capabilities known, unknown fields dropped when reading.
    Format,
    /// The format plus what the macro emits: `<Group>.<Leaf>` names,
    /// lowercase capability names, every error type declared, closed objects.
    Dsl,
}

struct Ctx<'m> {
    m: &'m Manifest,
    rules: Rules,
    issues: Vec<Issue>,
    namespace: String,
}

/// Checks every semantic rule under [`Rules::Dsl`]; an empty list means valid.
pub fn validate(m: &Manifest) -> Vec<Issue> {
    validate_with(m, Rules::Dsl)
}

/// Checks every semantic rule of `rules`; an empty list means valid.
pub fn validate_with(m: &Manifest, rules: Rules) -> Vec<Issue> {
    let mut cx = Ctx {
        m,
        rules,
        issues: Vec::new(),
        namespace: names::split_id(&m.id).0.to_owned(),
    };
    cx.top();
    cx.schemas();
    cx.rpcs();
    cx.operations();
    cx.events();
    cx.resources();
    cx.uses();
    cx.consumers();
    cx.state();
    cx.feeds();
    cx.jobs();
    cx.issues
}

impl Ctx<'_> {
    fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    fn top(&mut self) {
        if self.m.format != FORMAT {
            self.push(Issue::new(
                &["format"],
                format!("format must be `{FORMAT}`"),
            ));
        }
        if !names::valid_contract_id(&self.m.id) {
            self.push(
                Issue::new(&["id"], format!("invalid contract id `{}`", self.m.id))
                    .help("write `<name>@v<N>`, e.g. `documents@v1`"),
            );
        }
        for (field, value) in [
            ("displayName", &self.m.display_name),
            ("description", &self.m.description),
        ] {
            if value.trim().is_empty() {
                self.push(Issue::new(&[field], format!("`{field}` must not be empty")));
            }
        }
        for key in self.m.capabilities.keys() {
            let ok = key.split_once("::").is_some_and(|(ns, local)| {
                !ns.is_empty()
                    && match self.rules {
                        Rules::Format => !local.is_empty(),
                        Rules::Dsl => names::valid_capability(local),
                    }
            });
            if !ok {
                self.push(Issue::new(
                    &["capabilities", key],
                    format!("capability key `{key}` must be `<namespace>::<local>`"),
                ));
            }
        }
    }

    fn schemas(&mut self) {
        for (name, schema) in &self.m.schemas {
            if let Some(path) = find_ref(schema, &mut Vec::new()) {
                self.push(Issue::new(
                    &["schemas", name],
                    format!("schema `{name}` contains `$ref` at `{path}`; embedded schemas must be self-contained"),
                ));
            }
        }
    }

    fn schema_ref(&mut self, path: &[&str], what: &str, r: &SchemaRef) {
        if !self.m.schemas.contains_key(&r.schema) {
            self.push(
                Issue::new(path, format!("{what}: unknown schema '{}'", r.schema)).help(format!(
                    "`{}` is not a schema type of this contract; {DECLARE_SCHEMA}",
                    r.schema
                )),
            );
        }
    }

    fn cap_list(&mut self, path: &[&str], list: Option<&Vec<String>>) {
        for key in list.into_iter().flatten() {
            if self.rules == Rules::Format && BUILTIN_CAPABILITIES.contains(&key.as_str()) {
                continue;
            }
            let own = key
                .split_once("::")
                .is_some_and(|(ns, _)| ns == self.namespace);
            if !key.contains("::") || (own && !self.m.capabilities.contains_key(key)) {
                self.push(
                    Issue::new(path, format!("undeclared capability `{key}`"))
                        .help("declare it with #[capability(...)] in this module"),
                );
            }
        }
    }

    fn names_unique<'a>(&mut self, section: &str, names_iter: impl Iterator<Item = &'a String>) {
        let mut seen: BTreeMap<String, &String> = BTreeMap::new();
        for name in names_iter {
            match self.rules {
                Rules::Format if name.is_empty() => {
                    self.push(Issue::new(&[section, name], "names must not be empty"));
                }
                Rules::Dsl if !names::valid_surface_name(name) => {
                    self.push(Issue::new(
                        &[section, name],
                        format!("`{name}` is not a `<Group>.<Leaf>` PascalCase name"),
                    ));
                }
                _ => {}
            }
            if let Some(prev) = seen.insert(names::normalized(name), name) {
                self.push(Issue::new(
                    &[section, name],
                    format!("`{name}` collides with `{prev}` after case normalization"),
                ));
            }
        }
    }

    fn rpcs(&mut self) {
        self.names_unique("rpc", self.m.rpc.keys());
        for (name, rpc) in &self.m.rpc {
            let n = name.as_str();
            self.schema_ref(
                &["rpc", n, "input"],
                &format!("rpc '{n}' input"),
                &rpc.input,
            );
            self.schema_ref(
                &["rpc", n, "output"],
                &format!("rpc '{n}' output"),
                &rpc.output,
            );
            if let Some(caps) = &rpc.capabilities {
                self.cap_list(&["rpc", n, "capabilities"], caps.call.as_ref());
            }
            for e in rpc.errors.iter().flatten() {
                match self.m.errors.get(&e.ty) {
                    None if self.rules == Rules::Format
                        && BUILTIN_ERRORS.contains(&e.ty.as_str()) => {}
                    None => self.push(Issue::new(
                        &["rpc", n, "errors"],
                        format!(
                            "rpc '{n}' error type `{}` is not declared in `errors`",
                            e.ty
                        ),
                    )),
                    Some(decl) => {
                        if let Some(s) = &decl.schema {
                            self.schema_ref(
                                &["errors", &e.ty, "schema"],
                                &format!("error '{}'", e.ty),
                                s,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Checks that `pointer` reaches a `want` node of `schema`; `role` says
    /// what the pointer is for (shown with the fix).
    fn pointer(
        &mut self,
        path: &[&str],
        schema: &str,
        pointer: &str,
        want: Want,
        required: bool,
        role: &str,
    ) {
        let Some(s) = self.m.schemas.get(schema) else {
            return;
        };
        if let Err(why) = resolve_pointer(s, pointer, want, required) {
            let always = if required {
                " that is always present (not an `Option`)"
            } else {
                ""
            };
            self.push(
                Issue::new(path, format!("pointer `{pointer}` into `{schema}`: {why}")).help(
                    format!("{role}: point at {} of `{schema}`{always}", want.describe()),
                ),
            );
        }
    }

    fn operations(&mut self) {
        self.names_unique("operations", self.m.operations.keys());
        for (name, op) in &self.m.operations {
            let n = name.as_str();
            self.schema_ref(
                &["operations", n, "input"],
                &format!("operation '{n}' input"),
                &op.input,
            );
            self.schema_ref(
                &["operations", n, "output"],
                &format!("operation '{n}' output"),
                &op.output,
            );
            if let Some(p) = &op.progress {
                self.schema_ref(
                    &["operations", n, "progress"],
                    &format!("operation '{n}' progress"),
                    p,
                );
            }
            if let Some(caps) = &op.capabilities {
                let path = ["operations", n, "capabilities"];
                self.cap_list(&path, caps.call.as_ref());
                self.cap_list(&path, caps.observe.as_ref());
                self.cap_list(&path, caps.cancel.as_ref());
                self.cap_list(&path, caps.control.as_ref());
            }
            let Some(t) = &op.transfer else {
                continue;
            };
            let has_store = self
                .m
                .resources
                .as_ref()
                .is_some_and(|r| r.store.contains_key(&t.store));
            if !has_store {
                self.push(
                    Issue::new(
                        &["operations", n, "transfer", "store"],
                        format!(
                            "transfer store `{}` is not a store of this contract",
                            t.store
                        ),
                    )
                    .help("declare it with #[store(...)]"),
                );
            }
            let input = op.input.schema.as_str();
            self.pointer(
                &["operations", n, "transfer", "key"],
                input,
                &t.key,
                Want::String,
                true,
                "the transfer key names the stored object",
            );
            if let Some(ct) = &t.content_type {
                self.pointer(
                    &["operations", n, "transfer", "contentType"],
                    input,
                    ct,
                    Want::String,
                    false,
                    "`content_type` reads the MIME type from the input",
                );
            }
            if let Some(md) = &t.metadata {
                self.pointer(
                    &["operations", n, "transfer", "metadata"],
                    input,
                    md,
                    Want::Object,
                    false,
                    "`metadata` reads a string map from the input",
                );
            }
            if t.max_bytes == Some(0) {
                self.push(Issue::new(
                    &["operations", n, "transfer", "maxBytes"],
                    "maxBytes must be >= 1",
                ));
            }
            if t.expires_in_ms == Some(0) {
                self.push(Issue::new(
                    &["operations", n, "transfer", "expiresInMs"],
                    "expiresInMs must be >= 1",
                ));
            }
        }
    }

    fn events(&mut self) {
        self.names_unique("events", self.m.events.keys());
        for (name, ev) in &self.m.events {
            let n = name.as_str();
            self.schema_ref(&["events", n], &format!("event '{n}'"), &ev.event);
            if let Some(caps) = &ev.capabilities {
                self.cap_list(&["events", n, "capabilities"], caps.publish.as_ref());
                self.cap_list(&["events", n, "capabilities"], caps.subscribe.as_ref());
            }
            for (i, p) in ev.params.iter().flatten().enumerate() {
                let idx = i.to_string();
                self.pointer(
                    &["events", n, "params", &idx],
                    &ev.event.schema,
                    p,
                    Want::Scalar,
                    true,
                    "event params become subject tokens",
                );
            }
        }
    }

    fn resources(&mut self) {
        let Some(r) = &self.m.resources else {
            return;
        };
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (kind, alias) in
            r.kv.keys()
                .map(|a| ("kv", a))
                .chain(r.store.keys().map(|a| ("store", a)))
        {
            if let Some(prev) = seen.insert(names::normalized(alias), format!("{kind} `{alias}`")) {
                self.push(Issue::new(
                    &["resources", kind, alias],
                    format!("alias `{alias}` collides with {prev} after case normalization"),
                ));
            }
        }
        for (alias, kv) in &r.kv {
            let a = alias.as_str();
            self.schema_ref(
                &["resources", "kv", a, "schema"],
                &format!("kv '{a}' schema"),
                &kv.schema,
            );
            if let Some(h) = kv.history
                && !(1..=64).contains(&h)
            {
                self.push(
                    Issue::new(&["resources", "kv", a, "history"], format!("kv '{a}' history {h} is out of range"))
                        .help("history must be between 1 and 64 (NATS keeps at most 64 revisions per key)"),
                );
            }
            if let Some(m) = kv.max_value_bytes
                && (m == 0 || m > i32::MAX as u64)
            {
                self.push(Issue::new(
                    &["resources", "kv", a, "maxValueBytes"],
                    format!("kv '{a}' maxValueBytes must be between 1 and {}", i32::MAX),
                ));
            }
            if kv.purpose.trim().is_empty() {
                self.push(Issue::new(
                    &["resources", "kv", a, "purpose"],
                    "purpose must not be empty",
                ));
            }
        }
        for (alias, st) in &r.store {
            let a = alias.as_str();
            if let Some(m) = st.max_total_bytes
                && (m == 0 || m > i64::MAX as u64)
            {
                self.push(Issue::new(
                    &["resources", "store", a, "maxTotalBytes"],
                    format!(
                        "store '{a}' maxTotalBytes must be between 1 and {}",
                        i64::MAX
                    ),
                ));
            }
            if st.purpose.trim().is_empty() {
                self.push(Issue::new(
                    &["resources", "store", a, "purpose"],
                    "purpose must not be empty",
                ));
            }
        }
    }

    fn uses(&mut self) {
        let Some(uses) = &self.m.uses else {
            return;
        };
        for (alias, r) in uses.all() {
            if !names::valid_contract_id(&r.contract) {
                self.push(Issue::new(
                    &["uses", alias, "contract"],
                    format!("invalid contract id `{}`", r.contract),
                ));
            }
            if r.contract == self.m.id {
                self.push(Issue::new(
                    &["uses", alias],
                    "a contract cannot use itself; subscribe to own events with `self` in an event consumer",
                ));
            }
        }
    }

    fn consumers(&mut self) {
        let all_uses = self.m.uses.as_ref().map(Uses::all).unwrap_or_default();
        for (group, g) in &self.m.event_consumers {
            let gr = group.as_str();
            for (alias, events) in g.uses.iter().flatten() {
                let subscribed: BTreeSet<&str> = all_uses
                    .get(alias.as_str())
                    .and_then(|r| r.events.as_ref())
                    .and_then(|e| e.subscribe.as_ref())
                    .map(|s| s.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                if !all_uses.contains_key(alias.as_str()) {
                    self.push(Issue::new(
                        &["eventConsumers", gr, "uses", alias],
                        format!("event consumer '{gr}' uses alias `{alias}`, which is not declared in `uses`"),
                    ));
                    continue;
                }
                for ev in events {
                    if !subscribed.contains(ev.as_str()) {
                        self.push(
                            Issue::new(
                                &["eventConsumers", gr, "uses", alias, ev],
                                format!("event consumer '{gr}' reads `{ev}` from `{alias}`, but `{alias}` does not subscribe to it"),
                            )
                            .help(format!("add `subscribe = [\"{ev}\"]` to the #[uses] declaration of `{alias}`")),
                        );
                    }
                }
            }
            for ev in g.own.iter().flatten() {
                if !self.m.events.contains_key(ev) {
                    self.push(
                        Issue::new(
                            &["eventConsumers", gr, "self", ev],
                            format!("event consumer '{gr}' reads own event `{ev}`, which this contract does not declare"),
                        )
                        .help("declare it with #[event(\"Group.Event\")] on its type"),
                    );
                }
            }
            let concurrency = g.concurrency.unwrap_or(1);
            if concurrency == 0 {
                self.push(Issue::new(
                    &["eventConsumers", gr, "concurrency"],
                    "concurrency must be >= 1",
                ));
            }
            if g.ordering == Some(Ordering::Strict) && concurrency > 1 {
                self.push(
                    Issue::new(
                        &["eventConsumers", gr, "ordering"],
                        format!("event consumer '{gr}' asks for strict ordering with concurrency {concurrency}"),
                    )
                    .help("strict ordering handles one message at a time: set `concurrency = 1` or `ordering = \"unordered\"`"),
                );
            }
            for (k, v) in [("ackWaitMs", g.ack_wait_ms), ("maxDeliver", g.max_deliver)] {
                if v == Some(0) {
                    self.push(Issue::new(
                        &["eventConsumers", gr, k],
                        format!("{k} must be >= 1"),
                    ));
                }
            }
        }
    }
}

impl Ctx<'_> {
    fn state(&mut self) {
        for (name, st) in self.m.state.iter().flatten() {
            let n = name.as_str();
            self.schema_ref(
                &["state", n, "schema"],
                &format!("state '{n}' schema"),
                &st.schema,
            );
            for (version, r) in st.accepted_versions.iter().flatten() {
                self.schema_ref(
                    &["state", n, "acceptedVersions", version],
                    &format!("state '{n}' version '{version}'"),
                    r,
                );
            }
        }
    }

    fn feeds(&mut self) {
        for (name, feed) in self.m.feeds.iter().flatten() {
            let n = name.as_str();
            self.schema_ref(
                &["feeds", n, "input"],
                &format!("feed '{n}' input"),
                &feed.input,
            );
            self.schema_ref(
                &["feeds", n, "event"],
                &format!("feed '{n}' event"),
                &feed.event,
            );
            if let Some(caps) = &feed.capabilities {
                self.cap_list(&["feeds", n, "capabilities"], caps.subscribe.as_ref());
            }
        }
    }

    fn jobs(&mut self) {
        for (name, job) in self.m.jobs.iter().flatten() {
            let n = name.as_str();
            self.schema_ref(
                &["jobs", n, "payload"],
                &format!("job '{n}' payload"),
                &job.payload,
            );
            if let Some(r) = &job.result {
                self.schema_ref(&["jobs", n, "result"], &format!("job '{n}' result"), r);
            }
            for (k, v) in [
                ("maxDeliver", job.max_deliver),
                ("ackWaitMs", job.ack_wait_ms),
                ("defaultDeadlineMs", job.default_deadline_ms),
                ("concurrency", job.concurrency),
            ] {
                if v == Some(0) {
                    self.push(Issue::new(&["jobs", n, k], format!("{k} must be >= 1")));
                }
            }
        }
    }
}

fn find_ref(schema: &Json, path: &mut Vec<String>) -> Option<String> {
    match schema {
        Json::Object(map) => {
            if map.contains_key("$ref") {
                return Some(format!("/{}", path.join("/")));
            }
            for (k, v) in map {
                path.push(k.clone());
                if let Some(found) = find_ref(v, path) {
                    return Some(found);
                }
                path.pop();
            }
            None
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                if let Some(found) = find_ref(v, path) {
                    return Some(found);
                }
                path.pop();
            }
            None
        }
        _ => None,
    }
}
