//! Generic schema types and schema expressions at surface positions.
//!
//! A generic schema type (`struct Page<T> { items: Vec<T> }`) has no schema
//! of its own: each use with concrete arguments (`Page<Task>`) is an
//! instance, derived with each parameter bound to its argument's schema. Instances and the other type expressions an RPC or
//! operation may take or return (`Vec<Task>`, `u64`, `Option<Team>`) get a
//! manifest schema name built from the expression, so the same expression
//! always has the same readable name: `Page<Task>` is `PageOfTask`,
//! `Pair<Task, Team>` is `PairOfTaskAndTeam`, `Vec<Task>` is `TaskList`,
//! `Option<Task>` is `OptionalTask`, `u64` is `U64`.

use syn::spanned::Spanned as _;

/// The schema name of an RPC or operation that declares no input; the
/// runtime sends `trellis::Empty` (`{}`).
pub const EMPTY: &str = "Empty";

/// The schema of [`EMPTY`]: any JSON object.
pub fn empty_schema() -> trellis_manifest::json::Json {
    use trellis_manifest::json::{Json, Object};
    let mut map = Object::new();
    map.insert("properties".into(), Json::Object(Object::new()));
    map.insert("type".into(), Json::str("object"));
    Json::Object(map)
}

/// The type arguments written on a path segment (`Page<Task>` gives
/// `[Task]`; lifetimes and consts are left out).
pub fn type_args(seg: &syn::PathSegment) -> Vec<&syn::Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The type parameters of a declaration; an error for lifetime and const
/// parameters, which a wire type cannot have.
pub fn type_params(input: &syn::DeriveInput) -> syn::Result<Vec<syn::Ident>> {
    let mut out = Vec::new();
    for param in &input.generics.params {
        match param {
            syn::GenericParam::Type(t) => out.push(t.ident.clone()),
            syn::GenericParam::Lifetime(l) => {
                return Err(syn::Error::new(
                    l.span(),
                    "schema types own their data: remove the lifetime parameter and use \
                     `String` or `Vec<T>` instead of references",
                ));
            }
            syn::GenericParam::Const(c) => {
                return Err(syn::Error::new(
                    c.span(),
                    "const parameters cannot be named in a manifest schema: give the array a \
                     literal length, or use `Vec<T>`",
                ));
            }
        }
    }
    Ok(out)
}

/// Whether `ty` is a bare name that reads like a type parameter the
/// contract never declared (`T`, `Item` when `Item` is a parameter of the
/// generic it is passed to).
pub fn open_parameter<'a>(ty: &'a syn::Type, params: &[syn::Ident]) -> Option<&'a syn::Ident> {
    let syn::Type::Path(p) = ty else {
        return None;
    };
    let ident = p.path.get_ident()?;
    let name = ident.to_string();
    let single_capital = name.len() == 1 && name.chars().all(|c| c.is_ascii_uppercase());
    (single_capital || params.iter().any(|p| *p == name)).then_some(ident)
}

/// The manifest name of a schema expression, from its syntax. `resolve`
/// gives the full path a written path names (through the module's `use`s)
/// and whether it is a generic schema type (whose arguments are part of the
/// name; an external type's, like `DateTime<Utc>`'s, are not).
pub fn expression_name(
    ty: &syn::Type,
    resolve: &dyn Fn(&syn::Path) -> (Vec<String>, bool),
) -> syn::Result<String> {
    let unsupported = || {
        syn::Error::new(
            ty.span(),
            "this type has no schema name; use a named schema type",
        )
    };
    match ty {
        syn::Type::Group(g) => expression_name(&g.elem, resolve),
        syn::Type::Paren(p) => expression_name(&p.elem, resolve),
        syn::Type::Tuple(t) if t.elems.is_empty() => Ok("Unit".to_owned()),
        syn::Type::Array(a) => {
            let len = match &a.len {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_digits().to_owned(),
                _ => return Err(unsupported()),
            };
            Ok(format!("{}Array{len}", expression_name(&a.elem, resolve)?))
        }
        syn::Type::Path(p) if p.qself.is_none() => {
            let Some(seg) = p.path.segments.last() else {
                return Err(unsupported());
            };
            let (full, generic) = resolve(&p.path);
            let base = full
                .last()
                .cloned()
                .unwrap_or_else(|| seg.ident.to_string());
            let args = type_args(seg);
            let arg = |i: usize| -> syn::Result<String> {
                args.get(i)
                    .map(|t| expression_name(t, resolve))
                    .unwrap_or_else(|| Err(unsupported()))
            };
            Ok(match base.as_str() {
                "Option" => format!("Optional{}", arg(0)?),
                "Vec" | "VecDeque" | "LinkedList" => format!("{}List", arg(0)?),
                "HashSet" | "BTreeSet" => format!("{}Set", arg(0)?),
                "HashMap" | "BTreeMap" => format!("{}Map", arg(1)?),
                "Box" | "Arc" | "Rc" if args.len() == 1 => arg(0)?,
                _ if args.is_empty() || !generic => capitalized(&base),
                _ => {
                    let names = args
                        .iter()
                        .map(|t| expression_name(t, resolve))
                        .collect::<syn::Result<Vec<_>>>()?;
                    format!("{}Of{}", capitalized(&base), names.join("And"))
                }
            })
        }
        _ => Err(unsupported()),
    }
}

/// `u64` -> `U64`; names that start with a capital stay as written.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
