//! Schema compatibility for plans: whether every value one JSON Schema
//! allows is also allowed by another (`$ref`s resolved), and if not, why,
//! worded for the direction the values travel.
//!
//! The check is conservative: a restricting keyword it does not model
//! counts as incompatible when it differs. Two relaxations keep additive
//! rollouts safe, as the format intends (wire objects stay open): a
//! property only one side declares on an object without
//! `additionalProperties` is not compared, and annotations (`title`,
//! `description`, `default`, ..) are ignored.

use std::collections::BTreeSet;

use trellis_manifest::Json;
use trellis_manifest::json::Number;

/// Which way values travel, which fixes the direction of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Values the provider receives (inputs, stored KV values, events
    /// other contracts publish): the new schema must accept every value
    /// the previous one accepted.
    Accepts,
    /// Values the provider sends (outputs, progress, event payloads):
    /// every value of the new schema must still be valid under the
    /// previous one, which is what callers built on it decode.
    Produces,
}

/// Whether every value valid under `old` is still valid under `new`
/// (conservative: unknown differences count as incompatible). `at` prefixes
/// the paths in the reason.
pub fn schema_compatible(old: &Json, new: &Json, at: &str) -> Result<(), String> {
    compare(old, new, Direction::Accepts, at)
}

/// Whether `new` can replace `old` for values travelling in `direction`;
/// `Err` says why not. `$ref`s (`#/...` pointers) resolve within the
/// schema they appear in.
pub fn compare(old: &Json, new: &Json, direction: Direction, at: &str) -> Result<(), String> {
    compare_in(
        Located {
            schema: old,
            document: None,
        },
        Located {
            schema: new,
            document: None,
        },
        direction,
        at,
    )
}

/// A schema and the document around it (for a manifest schema:
/// `{ "schemas": { .. } }`).
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    /// The schema.
    pub schema: &'a Json,
    /// Where `$ref`s that do not resolve within the schema are looked up
    /// (`#/schemas/<Name>` in a manifest).
    pub document: Option<&'a Json>,
}

/// [`compare`] with `$ref`s resolved within each schema first, then in its
/// document.
pub fn compare_in(
    old: Located<'_>,
    new: Located<'_>,
    direction: Direction,
    at: &str,
) -> Result<(), String> {
    let (narrow, wide) = match direction {
        Direction::Accepts => (old, new),
        Direction::Produces => (new, old),
    };
    let mut checker = Checker {
        roots: [narrow.schema, wide.schema],
        documents: [narrow.document, wide.document],
        assumed: Vec::new(),
    };
    let (narrow, wide) = (narrow.schema, wide.schema);
    checker
        .subsumes(narrow, wide, at)
        .map_err(|f| f.render(direction))
}

/// Why a narrow schema's values are not all valid under a wide one.
#[derive(Debug, Clone, PartialEq)]
enum Why {
    /// The type sets differ (`narrow`'s types are not all in `wide`'s).
    Type { narrow: String, wide: String },
    /// Values `narrow` allows that `wide`'s `enum`/`const` does not
    /// (empty: `narrow` is not limited to listed values at all).
    Values(Vec<String>),
    /// `wide` sets a tighter bound (`minimum`, `maxLength`, ..).
    Bound { key: &'static str, lower: bool },
    /// `wide` requires a field `narrow` does not guarantee; `declared`
    /// when `narrow` declares it as an optional property.
    Required { field: String, declared: bool },
    /// No alternative of `wide` holds one of `narrow`'s values.
    NoBranch,
    /// `wide` allows nothing (`false`).
    Nothing,
    /// A restricting keyword this check does not model differs.
    Keyword(String),
    /// A `$ref` that does not resolve.
    Unresolved(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Finding {
    at: String,
    why: Why,
}

impl Finding {
    fn render(&self, direction: Direction) -> String {
        let here = if self.at.is_empty() { "/" } else { &self.at };
        let accepts = direction == Direction::Accepts;
        let what = match &self.why {
            Why::Type { narrow, wide } => {
                let (from, to) = if accepts {
                    (narrow, wide)
                } else {
                    (wide, narrow)
                };
                format!("type {from} became {to}")
            }
            Why::Values(extra) if extra.is_empty() => {
                if accepts {
                    "allowed values narrowed to a fixed list".to_owned()
                } else {
                    "values are no longer limited to the previous fixed list".to_owned()
                }
            }
            Why::Values(extra) => {
                let list = extra.join(", ");
                if accepts {
                    format!("allowed values narrowed ({list} no longer accepted)")
                } else {
                    format!("allowed values widened ({list} unknown to earlier readers)")
                }
            }
            Why::Bound { key, lower } => match (accepts, lower) {
                (true, true) => format!("{key} lowered"),
                (true, false) => format!("{key} raised"),
                (false, true) => format!("{key} raised (values beyond the previous bound)"),
                (false, false) => format!("{key} lowered (values beyond the previous bound)"),
            },
            Why::Required { field, declared } => match (accepts, declared) {
                (true, true) => format!("optional field `{field}` became required"),
                (true, false) => format!("new field `{field}` became required"),
                (false, true) => {
                    format!("field `{field}` became optional (earlier readers require it)")
                }
                (false, false) => {
                    format!("required field `{field}` was removed (earlier readers require it)")
                }
            },
            Why::NoBranch => {
                if accepts {
                    "no alternative of the new schema accepts every previous value (a variant was removed or changed)".to_owned()
                } else {
                    "a new value matches no alternative of the previous schema (a variant was added or changed)".to_owned()
                }
            }
            Why::Nothing => "the schema accepts no value".to_owned(),
            Why::Keyword(key) => format!("`{key}` changed"),
            Why::Unresolved(r) => format!("`$ref` `{r}` does not resolve"),
        };
        format!("{here}: {what}")
    }
}

/// Keywords that restrict values and are compared only for equality.
const OPAQUE: &[&str] = &[
    "pattern",
    "format",
    "multipleOf",
    "propertyNames",
    "patternProperties",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "contains",
    "minContains",
    "maxContains",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contentEncoding",
    "contentMediaType",
];

/// Lower bounds: a wide schema's bound above the narrow one's breaks.
const LOWER_BOUNDS: &[&str] = &[
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
];

/// Upper bounds: a wide schema's bound below the narrow one's breaks.
const UPPER_BOUNDS: &[&str] = &[
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
];

/// `$ref` chains longer than this are treated as unresolvable.
const MAX_REF_HOPS: usize = 32;

struct Checker<'a> {
    /// The documents `$ref`s of the narrow (0) and wide (1) side resolve in.
    roots: [&'a Json; 2],
    /// Where `$ref`s that miss in the root resolve, per side.
    documents: [Option<&'a Json>; 2],
    /// Pairs being compared further up: meeting one again (a recursive
    /// `$ref`) holds by assumption.
    assumed: Vec<(*const Json, *const Json)>,
}

static ANY: Json = Json::Bool(true);

impl<'a> Checker<'a> {
    fn resolve(&self, side: usize, mut s: &'a Json, at: &str) -> Result<&'a Json, Finding> {
        for _ in 0..MAX_REF_HOPS {
            let Some(r) = s.get("$ref") else {
                return Ok(s);
            };
            let target = r
                .as_str()
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|ptr| {
                    pointer(self.roots[side], ptr)
                        .or_else(|| self.documents[side].and_then(|d| pointer(d, ptr)))
                });
            match target {
                Some(t) => s = t,
                None => {
                    return Err(Finding {
                        at: at.to_owned(),
                        why: Why::Unresolved(r.as_str().unwrap_or("?").to_owned()),
                    });
                }
            }
        }
        Err(Finding {
            at: at.to_owned(),
            why: Why::Unresolved("(cycle)".to_owned()),
        })
    }

    /// Every value valid under `narrow` is valid under `wide`.
    fn subsumes(&mut self, narrow: &'a Json, wide: &'a Json, at: &str) -> Result<(), Finding> {
        let narrow = self.resolve(0, narrow, at)?;
        let wide = self.resolve(1, wide, at)?;
        let key = (narrow as *const Json, wide as *const Json);
        if self.assumed.contains(&key) {
            return Ok(());
        }
        self.assumed.push(key);
        let result = self.subsumes_resolved(narrow, wide, at);
        self.assumed.pop();
        result
    }

    fn subsumes_resolved(
        &mut self,
        narrow: &'a Json,
        wide: &'a Json,
        at: &str,
    ) -> Result<(), Finding> {
        let fail = |why| {
            Err(Finding {
                at: at.to_owned(),
                why,
            })
        };
        if allows_anything(wide) || narrow == &Json::Bool(false) {
            return Ok(());
        }
        if wide == &Json::Bool(false) {
            return fail(Why::Nothing);
        }
        if narrow == wide && !has_ref(narrow) {
            return Ok(());
        }
        let narrow: &'a Json = if narrow == &Json::Bool(true) {
            &EMPTY
        } else {
            narrow
        };
        if let Some(branches) = alternatives(narrow) {
            for b in branches {
                self.subsumes(b, wide, at)?;
            }
            return Ok(());
        }
        if let Some(branches) = alternatives(wide) {
            let mut near = Vec::new();
            for b in branches {
                match self.subsumes(narrow, b, at) {
                    Ok(()) => return Ok(()),
                    // A branch of another type here is no near miss.
                    Err(f) if f.at == at && matches!(f.why, Why::Type { .. }) => {}
                    Err(f) => near.push(f),
                }
            }
            // One branch of the same type: its reason is the telling one.
            return match <[Finding; 1]>::try_from(near) {
                Ok([f]) => Err(f),
                Err(_) => fail(Why::NoBranch),
            };
        }

        // Types (`integer` values are `number`s too).
        if let Some(wide_types) = types(wide) {
            let narrow_types = types(narrow).unwrap_or_default();
            let covered = !narrow_types.is_empty()
                && narrow_types.iter().all(|t| {
                    wide_types.contains(t) || (t == "integer" && wide_types.contains("number"))
                });
            if !covered {
                return fail(Why::Type {
                    narrow: show_types(types(narrow).as_ref()),
                    wide: show_types(Some(&wide_types)),
                });
            }
        }

        // Listed values.
        if let Some(wide_values) = values(wide) {
            match values(narrow) {
                None => return fail(Why::Values(Vec::new())),
                Some(narrow_values) => {
                    let extra: Vec<String> = narrow_values
                        .difference(&wide_values)
                        .map(|v| format!("`{v}`"))
                        .collect();
                    if !extra.is_empty() {
                        return fail(Why::Values(extra));
                    }
                }
            }
        }

        // Bounds.
        for &key in LOWER_BOUNDS {
            if let Some(w) = num(wide.get(key))
                && num(narrow.get(key)).is_none_or(|n| n < w)
            {
                return fail(Why::Bound { key, lower: false });
            }
        }
        for &key in UPPER_BOUNDS {
            if let Some(w) = num(wide.get(key))
                && num(narrow.get(key)).is_none_or(|n| n > w)
            {
                return fail(Why::Bound { key, lower: true });
            }
        }
        if wide.get("uniqueItems") == Some(&Json::Bool(true))
            && narrow.get("uniqueItems") != Some(&Json::Bool(true))
        {
            return fail(Why::Keyword("uniqueItems".to_owned()));
        }
        for &key in OPAQUE {
            if let Some(w) = wide.get(key)
                && narrow.get(key) != Some(w)
            {
                return fail(Why::Keyword(key.to_owned()));
            }
        }

        // Arrays.
        if let Some(w) = wide.get("items") {
            let n = narrow.get("items").unwrap_or(&ANY);
            self.subsumes(n, w, &format!("{at}/items"))?;
        }

        // Objects: required fields first (the most telling reason).
        let (narrow_req, wide_req) = (
            strings(narrow.get("required")),
            strings(wide.get("required")),
        );
        let narrow_props = narrow.get("properties").and_then(Json::as_object);
        let wide_props = wide.get("properties").and_then(Json::as_object);
        if let Some(field) = wide_req.difference(&narrow_req).next() {
            return fail(Why::Required {
                field: field.clone(),
                declared: narrow_props.is_some_and(|p| p.contains_key(field)),
            });
        }
        let names: BTreeSet<&String> = narrow_props
            .into_iter()
            .flat_map(|p| p.keys())
            .chain(wide_props.into_iter().flat_map(|p| p.keys()))
            .collect();
        let (narrow_extra, wide_extra) = (
            narrow.get("additionalProperties"),
            wide.get("additionalProperties"),
        );
        for name in names {
            let n = narrow_props.and_then(|p| p.get(name)).or(narrow_extra);
            let w = wide_props.and_then(|p| p.get(name)).or(wide_extra);
            // A property only one side declares, on an object without
            // `additionalProperties`, is an additive change: not compared.
            if let (Some(n), Some(w)) = (n, w) {
                self.subsumes(n, w, &format!("{at}/{name}"))?;
            }
        }
        if let Some(w) = wide_extra {
            let n = narrow_extra.unwrap_or(&ANY);
            self.subsumes(n, w, &format!("{at}/*"))?;
        }
        Ok(())
    }
}

static EMPTY: Json = Json::Object(std::collections::BTreeMap::new());

/// `true`, `{}`, or a schema of annotations only.
fn allows_anything(s: &Json) -> bool {
    match s {
        Json::Bool(b) => *b,
        Json::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// Keywords that describe but never restrict.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
    "$schema",
    "$id",
    "$defs",
    "definitions",
];

fn alternatives(s: &Json) -> Option<&[Json]> {
    s.get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Json::as_array)
}

/// The JSON types a schema allows; `None` when it does not say. A schema
/// without `type` but with `enum`/`const` allows the types of its values.
fn types(s: &Json) -> Option<BTreeSet<String>> {
    match s.get("type") {
        Some(Json::String(t)) => Some(BTreeSet::from([t.clone()])),
        Some(Json::Array(ts)) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => {
            let listed = s
                .get("enum")
                .and_then(Json::as_array)
                .map(<[Json]>::to_vec)
                .or_else(|| s.get("const").map(|c| vec![c.clone()]))?;
            Some(listed.iter().map(|v| type_of(v).to_owned()).collect())
        }
    }
}

fn type_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(Number::Float(_)) => "number",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn show_types(t: Option<&BTreeSet<String>>) -> String {
    match t {
        None => "(any)".to_owned(),
        Some(t) if t.len() == 1 => t.iter().next().cloned().unwrap_or_default(),
        Some(t) => format!("[{}]", t.iter().cloned().collect::<Vec<_>>().join(", ")),
    }
}

/// The values of `enum` or `const`, as canonical text.
fn values(s: &Json) -> Option<BTreeSet<String>> {
    let mut out: Option<BTreeSet<String>> = s.get("enum").and_then(Json::as_array).map(|vs| {
        vs.iter()
            .map(Json::to_canonical_string)
            .collect::<BTreeSet<_>>()
    });
    if let Some(c) = s.get("const") {
        let c = c.to_canonical_string();
        out = Some(match out {
            Some(listed) if listed.contains(&c) => BTreeSet::from([c]),
            Some(_) => BTreeSet::new(),
            None => BTreeSet::from([c]),
        });
    }
    out
}

fn strings(v: Option<&Json>) -> BTreeSet<String> {
    v.and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn num(v: Option<&Json>) -> Option<f64> {
    match v? {
        Json::Number(Number::Int(i)) => Some(*i as f64),
        Json::Number(Number::UInt(u)) => Some(*u as f64),
        Json::Number(Number::Float(f)) => Some(*f),
        _ => None,
    }
}

fn has_ref(s: &Json) -> bool {
    match s {
        Json::Object(m) => m.contains_key("$ref") || m.values().any(has_ref),
        Json::Array(items) => items.iter().any(has_ref),
        _ => false,
    }
}

/// JSON pointer lookup (`""` is the root; `~1` is `/`, `~0` is `~`).
fn pointer<'a>(root: &'a Json, ptr: &str) -> Option<&'a Json> {
    if ptr.is_empty() {
        return Some(root);
    }
    let mut at = root;
    for token in ptr.strip_prefix('/')?.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        at = match at {
            Json::Object(m) => m.get(&token)?,
            Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Json {
        Json::parse(text).expect("json")
    }

    #[test]
    fn additive_schema_changes_are_compatible() {
        let old = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"integer"}},"required":["id","n"]}"#,
        );
        let added_optional = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"n":{"type":"number"},"x":{"type":"string"}},"required":["id"]}"#,
        );
        assert_eq!(schema_compatible(&old, &added_optional, ""), Ok(()));
        let widened_enum = (
            j(r#"{"type":"string","enum":["a"]}"#),
            j(r#"{"type":"string","enum":["a","b"]}"#),
        );
        assert_eq!(
            schema_compatible(&widened_enum.0, &widened_enum.1, ""),
            Ok(())
        );
        let made_optional = j(r#"{"anyOf":[{"type":"string"},{"type":"null"}]}"#);
        assert_eq!(
            schema_compatible(&j(r#"{"type":"string"}"#), &made_optional, ""),
            Ok(())
        );
    }

    #[test]
    fn narrowing_schema_changes_are_incompatible() {
        let old = j(r#"{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}"#);
        let new_required = j(
            r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"string"}},"required":["id","x"]}"#,
        );
        assert!(
            schema_compatible(&old, &new_required, "")
                .unwrap_err()
                .contains("`x` became required")
        );
        let retyped =
            j(r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#);
        assert!(
            schema_compatible(&old, &retyped, "")
                .unwrap_err()
                .contains("/id")
        );
        let narrowed = (
            j(r#"{"type":"string","enum":["a","b"]}"#),
            j(r#"{"type":"string","enum":["a"]}"#),
        );
        assert!(schema_compatible(&narrowed.0, &narrowed.1, "").is_err());
        let bounded = (
            j(r#"{"type":"integer"}"#),
            j(r#"{"type":"integer","maximum":5}"#),
        );
        assert!(schema_compatible(&bounded.0, &bounded.1, "").is_err());
    }

    fn input(old: &str, new: &str) -> Result<(), String> {
        compare(&j(old), &j(new), Direction::Accepts, "")
    }

    fn output(old: &str, new: &str) -> Result<(), String> {
        compare(&j(old), &j(new), Direction::Produces, "")
    }

    const BASE: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["id"]}"#;

    #[test]
    fn a_new_optional_field_is_safe_both_ways() {
        let added = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"anyOf":[{"type":"string"},{"type":"null"}]},"x":{"type":"integer"}},"required":["id"]}"#;
        assert_eq!(input(BASE, added), Ok(()));
        assert_eq!(output(BASE, added), Ok(()));
    }

    #[test]
    fn a_new_required_field_breaks_inputs_only() {
        let added = r#"{"type":"object","properties":{"id":{"type":"string"},"x":{"type":"integer"}},"required":["id","x"]}"#;
        let why = input(BASE, added).unwrap_err();
        assert!(why.contains("new field `x` became required"), "{why}");
        assert_eq!(output(BASE, added), Ok(()));
    }

    #[test]
    fn an_optional_field_made_required_breaks_inputs_only() {
        let required = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["id","note"]}"#;
        let why = input(BASE, required).unwrap_err();
        assert!(
            why.contains("optional field `note` became required"),
            "{why}"
        );
        assert_eq!(output(BASE, required), Ok(()));
    }

    #[test]
    fn a_removed_required_field_breaks_outputs_only() {
        let removed = r#"{"type":"object","properties":{"note":{"anyOf":[{"type":"string"},{"type":"null"}]}}}"#;
        let why = output(BASE, removed).unwrap_err();
        assert!(why.contains("required field `id` was removed"), "{why}");
        assert_eq!(input(BASE, removed), Ok(()));
        let optional = r#"{"type":"object","properties":{"id":{"type":"string"}}}"#;
        let why = output(BASE, optional).unwrap_err();
        assert!(why.contains("field `id` became optional"), "{why}");
    }

    #[test]
    fn a_type_change_breaks_both_ways() {
        let retyped =
            r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#;
        let why = input(BASE, retyped).unwrap_err();
        assert!(why.contains("/id: type string became integer"), "{why}");
        let why = output(BASE, retyped).unwrap_err();
        assert!(why.contains("/id: type string became integer"), "{why}");
        // A nullable field made non-null: old inputs may send null.
        let not_null = r#"{"type":"object","properties":{"id":{"type":"string"},"note":{"type":"string"}},"required":["id"]}"#;
        assert!(input(BASE, not_null).unwrap_err().contains("/note"));
        assert_eq!(output(BASE, not_null), Ok(()));
        // Integers are numbers: widening accepts more, but produces more too.
        assert_eq!(
            input(r#"{"type":"integer"}"#, r#"{"type":"number"}"#),
            Ok(())
        );
        assert!(output(r#"{"type":"integer"}"#, r#"{"type":"number"}"#).is_err());
    }

    #[test]
    fn enums_narrowed_break_inputs_and_widened_break_outputs() {
        let (ab, a, abc) = (
            r#"{"type":"string","enum":["a","b"]}"#,
            r#"{"type":"string","enum":["a"]}"#,
            r#"{"type":"string","enum":["a","b","c"]}"#,
        );
        let why = input(ab, a).unwrap_err();
        assert!(
            why.contains("narrowed") && why.contains(r#"`"b"`"#),
            "{why}"
        );
        assert_eq!(output(ab, a), Ok(()));
        assert_eq!(input(ab, abc), Ok(()));
        let why = output(ab, abc).unwrap_err();
        assert!(why.contains("widened") && why.contains(r#"`"c"`"#), "{why}");
        // Inside an optional (`anyOf` with null) the same-typed branch
        // gives the reason.
        let optional = |e: &str| format!(r#"{{"anyOf":[{e},{{"type":"null"}}]}}"#);
        let why = input(&optional(ab), &optional(a)).unwrap_err();
        assert!(why.contains("allowed values narrowed"), "{why}");
        // A free string made an enum narrows; an enum made a free string widens.
        assert!(input(r#"{"type":"string"}"#, ab).is_err());
        assert!(output(ab, r#"{"type":"string"}"#).is_err());
    }

    #[test]
    fn tagged_variants_follow_the_same_directions() {
        let variant = |tag: &str| {
            format!(
                r#"{{"type":"object","properties":{{"kind":{{"type":"string","const":"{tag}"}}}},"required":["kind"]}}"#
            )
        };
        let one_of = |tags: &[&str]| {
            format!(
                r#"{{"oneOf":[{}]}}"#,
                tags.iter()
                    .map(|t| variant(t))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let (ab, abc) = (one_of(&["a", "b"]), one_of(&["a", "b", "c"]));
        assert_eq!(input(&ab, &abc), Ok(()));
        assert!(
            input(&abc, &ab)
                .unwrap_err()
                .contains("variant was removed")
        );
        assert_eq!(output(&abc, &ab), Ok(()));
        assert!(output(&ab, &abc).unwrap_err().contains("variant was added"));
    }

    #[test]
    fn bounds_follow_the_direction() {
        let (wide, narrow) = (
            r#"{"type":"integer","minimum":0,"maximum":100}"#,
            r#"{"type":"integer","minimum":0,"maximum":10}"#,
        );
        assert!(input(wide, narrow).unwrap_err().contains("maximum lowered"));
        assert_eq!(output(wide, narrow), Ok(()));
        assert_eq!(input(narrow, wide), Ok(()));
        assert!(output(narrow, wide).unwrap_err().contains("maximum raised"));
        // u32 -> u64 (no maximum): fine for inputs, not for outputs.
        let u64_ = r#"{"type":"integer","minimum":0}"#;
        assert_eq!(input(narrow, u64_), Ok(()));
        assert!(output(narrow, u64_).is_err());
    }

    #[test]
    fn maps_and_unmodelled_keywords() {
        let (strings, ints) = (
            r#"{"type":"object","additionalProperties":{"type":"string"}}"#,
            r#"{"type":"object","additionalProperties":{"type":"integer"}}"#,
        );
        assert!(input(strings, ints).unwrap_err().contains("/*"));
        assert!(output(strings, ints).is_err());
        // A declared property must fit what the map allowed for any key.
        let with_prop = r#"{"type":"object","properties":{"n":{"type":"integer"}},"additionalProperties":{"type":"string"}}"#;
        assert!(input(strings, with_prop).unwrap_err().contains("/n"));
        // Unmodelled restrictions count when they differ; annotations never.
        assert!(
            input(
                r#"{"type":"string"}"#,
                r#"{"type":"string","pattern":"^a"}"#
            )
            .unwrap_err()
            .contains("`pattern` changed")
        );
        assert_eq!(
            input(
                r#"{"type":"string"}"#,
                r#"{"type":"string","description":"now documented"}"#
            ),
            Ok(())
        );
        assert!(input(r#"{"type":"string"}"#, "false").is_err());
        assert_eq!(input("false", r#"{"type":"string"}"#), Ok(()));
        assert_eq!(input(r#"{"type":"string"}"#, "true"), Ok(()));
    }

    #[test]
    fn refs_resolve_within_their_schema() {
        let old = r##"{"type":"object","properties":{"item":{"$ref":"#/$defs/Item"}},"required":["item"],"$defs":{"Item":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}}}"##;
        let same_inlined = r#"{"type":"object","properties":{"item":{"type":"object","properties":{"id":{"type":"string"}},"required":["id"]}},"required":["item"]}"#;
        assert_eq!(input(old, same_inlined), Ok(()));
        assert_eq!(output(old, same_inlined), Ok(()));
        let retyped = r##"{"type":"object","properties":{"item":{"$ref":"#/$defs/Item"}},"required":["item"],"$defs":{"Item":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}}}"##;
        let why = input(old, retyped).unwrap_err();
        assert!(
            why.contains("/item/id: type string became integer"),
            "{why}"
        );
        let dangling = r##"{"type":"object","properties":{"item":{"$ref":"#/$defs/Missing"}}}"##;
        assert!(
            input(old, dangling)
                .unwrap_err()
                .contains("does not resolve")
        );
        // A `$ref` into the manifest's `schemas` resolves there.
        let document = j(r#"{"schemas":{"Id":{"type":"string"},"Num":{"type":"integer"}}}"#);
        fn located<'a>(schema: &'a Json, document: &'a Json) -> Located<'a> {
            Located {
                schema,
                document: Some(document),
            }
        }
        let (by_id, by_num) = (
            j(r##"{"type":"object","properties":{"id":{"$ref":"#/schemas/Id"}}}"##),
            j(r##"{"type":"object","properties":{"id":{"$ref":"#/schemas/Num"}}}"##),
        );
        assert_eq!(
            compare_in(
                located(&by_id, &document),
                located(&by_id, &document),
                Direction::Accepts,
                ""
            ),
            Ok(())
        );
        let why = compare_in(
            located(&by_id, &document),
            located(&by_num, &document),
            Direction::Accepts,
            "",
        )
        .unwrap_err();
        assert!(why.contains("/id: type string became integer"), "{why}");
        // Recursive schemas terminate (a pair met again holds by assumption).
        let tree = |leaf: &str| {
            format!(
                r##"{{"type":"object","properties":{{"value":{{"type":"{leaf}"}},"children":{{"type":"array","items":{{"$ref":"#"}}}}}},"required":["value"]}}"##
            )
        };
        assert_eq!(input(&tree("integer"), &tree("integer")), Ok(()));
        assert_eq!(input(&tree("integer"), &tree("number")), Ok(()));
        assert!(
            input(&tree("number"), &tree("integer"))
                .unwrap_err()
                .contains("/value")
        );
    }
}
