//! A Rust type expression as JSON Schema: primitives and std containers,
//! the module's own and shared schema types (generic instances included),
//! stated schemas, then the well-known external types.

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::spanned::Spanned as _;

use super::known::{self, Mapping};
use super::{
    Deriver, SchemaTypes, err, generic, hatch, last_segment, obj, receive_grant_schema, ty,
};
use trellis_manifest::json::{Json, Object};

const SUPPORTED: &str = "supported: bool, String, char, integers, f32/f64, \
Option<T>, Vec<T>, VecDeque<T>, [T; N], HashSet/BTreeSet<T>, HashMap/BTreeMap<String, T>, \
Box/Arc/Rc<T>, serde_json::Value, (), trellis::ReceiveGrant, the schema types declared in \
this contract module and the well-known types (README: \"Types a contract may use\")";

impl<'a> Deriver<'a> {
    /// Maps a Rust type to its schema.
    pub(super) fn type_schema(&mut self, t: &syn::Type) -> syn::Result<Json> {
        match t {
            syn::Type::Group(g) => self.type_schema(&g.elem),
            syn::Type::Paren(p) => self.type_schema(&p.elem),
            syn::Type::Tuple(tuple) if tuple.elems.is_empty() => Ok(ty("null")),
            syn::Type::Array(array) => {
                let items = self.type_schema(&array.elem)?;
                let len = match &array.len {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Int(n),
                        ..
                    }) => n.base10_parse::<u64>()?,
                    other => {
                        return Err(err(
                            other.span(),
                            "array lengths in schema types must be integer literals",
                        ));
                    }
                };
                Ok(obj([
                    ("type", Json::str("array")),
                    ("items", items),
                    ("minItems", Json::uint(len)),
                    ("maxItems", Json::uint(len)),
                ]))
            }
            syn::Type::Path(p) if p.qself.is_none() => self.path_schema(t, &p.path),
            syn::Type::Reference(r) => Err(err(
                r.span(),
                "references are not allowed in schema types: schema types own their data; \
                 use `String` or `Vec<T>`",
            )),
            other => Err(err(
                other.span(),
                format!("this type cannot be described in a contract schema; {SUPPORTED}"),
            )),
        }
    }

    fn path_schema(&mut self, t: &syn::Type, path: &syn::Path) -> syn::Result<Json> {
        let Some(seg) = path.segments.last() else {
            return Err(err(t.span(), "empty type path"));
        };
        let name = seg.ident.to_string();
        let args = generic::type_args(seg);
        if path.segments.len() == 1
            && args.is_empty()
            && let Some((_, schema)) = self.bound.get(&name)
        {
            return Ok(schema.clone());
        }
        let one = |args: &[&syn::Type]| -> syn::Result<syn::Type> {
            args.first()
                .map(|t| (*t).clone())
                .ok_or_else(|| err(seg.span(), format!("`{name}` needs a type argument")))
        };
        let int = |signed: bool, bits: u32| -> Json {
            let mut map = Object::new();
            map.insert("type".into(), Json::str("integer"));
            if signed && bits < 64 {
                map.insert("minimum".into(), Json::int(-(1i64 << (bits - 1))));
                map.insert("maximum".into(), Json::int((1i64 << (bits - 1)) - 1));
            } else if !signed {
                map.insert("minimum".into(), Json::uint(0));
                if bits < 64 {
                    map.insert("maximum".into(), Json::uint((1u64 << bits) - 1));
                }
            }
            Json::Object(map)
        };
        if path.segments.len() == 1 || name == "Value" {
            match name.as_str() {
                "bool" => return Ok(ty("boolean")),
                "String" | "str" => return Ok(ty("string")),
                "char" => {
                    return Ok(obj([
                        ("type", Json::str("string")),
                        ("minLength", Json::uint(1)),
                        ("maxLength", Json::uint(1)),
                    ]));
                }
                "i8" => return Ok(int(true, 8)),
                "i16" => return Ok(int(true, 16)),
                "i32" => return Ok(int(true, 32)),
                "i64" | "isize" => return Ok(int(true, 64)),
                "u8" => return Ok(int(false, 8)),
                "u16" => return Ok(int(false, 16)),
                "u32" => return Ok(int(false, 32)),
                "u64" | "usize" => return Ok(int(false, 64)),
                // serde_json writes every digit; readers without big
                // integers lose precision beyond 2^53, as with 64 bits.
                "i128" => return Ok(int(true, 128)),
                "u128" => return Ok(int(false, 128)),
                "f32" | "f64" => return Ok(ty("number")),
                _ => {}
            }
        }
        if name == "ReceiveGrant"
            && path.segments.len() >= 2
            && path.segments.first().is_some_and(|s| s.ident == "trellis")
        {
            return Ok(receive_grant_schema());
        }
        let full = self.types.imports.resolve(path);
        if let Some(schema) = self.types.stated.get(&full) {
            return Ok(schema.clone());
        }
        if let Some((home, item)) = self.library.home(&full) {
            return self.declared(t, home, item, seg, &args);
        }
        if let Some(row) = known::lookup(&full) {
            return self.well_known(t, row, &args);
        }
        // An imported alias of a std container (`use std::collections::HashMap as Map`).
        let name = full.last().cloned().unwrap_or_else(|| name.clone());
        match name.as_str() {
            "Option" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([("anyOf", Json::Array(vec![inner, ty("null")]))]))
            }
            "Vec" | "VecDeque" | "LinkedList" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([("type", Json::str("array")), ("items", inner)]))
            }
            "HashSet" | "BTreeSet" => {
                let inner = self.type_schema(&one(&args)?)?;
                Ok(obj([
                    ("type", Json::str("array")),
                    ("items", inner),
                    ("uniqueItems", Json::Bool(true)),
                ]))
            }
            "HashMap" | "BTreeMap" => {
                let (Some(key), Some(value)) = (args.first(), args.get(1)) else {
                    return Err(err(
                        seg.span(),
                        format!("`{name}` needs key and value types"),
                    ));
                };
                if last_segment(key).is_none_or(|s| s.ident != "String") {
                    return Err(err(
                        key.span(),
                        "map keys in schema types must be `String` (JSON object keys are strings)",
                    ));
                }
                let inner = self.type_schema(value)?;
                Ok(obj([
                    ("type", Json::str("object")),
                    ("additionalProperties", inner),
                ]))
            }
            "Box" | "Arc" | "Rc" => self.type_schema(&one(&args)?),
            "Value"
                if path.segments.len() == 1
                    || path
                        .segments
                        .first()
                        .is_some_and(|s| s.ident == "serde_json") =>
            {
                if self.types.contains("Value") && path.segments.len() == 1 {
                    self.named(&name, seg.span())
                } else {
                    Ok(Json::object())
                }
            }
            _ if path.segments.len() == 1 && self.types.contains(&name) => {
                self.declared(t, self.types, &name, seg, &args)
            }
            _ => Err(syn::Error::new_spanned(
                t,
                hatch::unsupported(
                    &path
                        .segments
                        .iter()
                        .map(|s| s.ident.to_string())
                        .collect::<Vec<_>>()
                        .join("::"),
                    &full.join("::"),
                    self.types.imports.globs(),
                ),
            )),
        }
    }

    /// The schema of a well-known external type.
    fn well_known(
        &mut self,
        t: &syn::Type,
        row: &known::WellKnown,
        args: &[&syn::Type],
    ) -> syn::Result<Json> {
        let argument = || {
            args.first()
                .copied()
                .ok_or_else(|| err(t.span(), format!("`{}` needs a type argument", row.rust)))
        };
        match row.mapping {
            Mapping::Schema(text) => Json::parse(text).map_err(|e| {
                err(
                    t.span(),
                    format!("well-known schema of `{}`: {e}", row.rust),
                )
            }),
            Mapping::Argument => self.type_schema(argument()?),
            Mapping::NonZero(wrapped) => {
                let inner = match wrapped {
                    Some(primitive) => {
                        let ident = syn::Ident::new(primitive, t.span());
                        self.type_schema(&syn::parse_quote!(#ident))?
                    }
                    None => self.type_schema(argument()?)?,
                };
                known::non_zero(inner)
                    .ok_or_else(|| err(t.span(), format!("`{}` wraps an integer type", row.rust)))
            }
            Mapping::Refused { .. } => Err(syn::Error::new_spanned(
                t,
                known::refusal(row).unwrap_or_default(),
            )),
        }
    }

    /// A schema type declared in `home` (this module, or a shared schema
    /// module), written with `args`: a plain type, or an instance of a
    /// generic one. Arguments are derived here, in the writer's context;
    /// the declaration's body is derived in `home`'s, with each parameter
    /// bound to its argument's name and schema.
    fn declared(
        &mut self,
        t: &syn::Type,
        home: &'a SchemaTypes,
        name: &str,
        seg: &syn::PathSegment,
        args: &[&syn::Type],
    ) -> syn::Result<Json> {
        let Some(input) = home.items.get(name) else {
            return Err(err(seg.span(), format!("unknown schema type `{name}`")));
        };
        let params = generic::type_params(input)?;
        if params.is_empty() {
            if !args.is_empty() {
                return Err(err(
                    seg.arguments.span(),
                    format!("`{name}` has no type parameters: write `{name}`"),
                ));
            }
            return self.enter(name, seg.span(), home, input, BTreeMap::new());
        }
        let list = params
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if args.len() != params.len() {
            return Err(err(
                seg.span(),
                format!(
                    "`{name}` is generic over `{list}`: a contract schema is concrete, so name \
                     {} type argument{} here, e.g. `{name}<{}>`",
                    params.len(),
                    if params.len() == 1 { "" } else { "s" },
                    params.iter().map(|_| "Task").collect::<Vec<_>>().join(", "),
                ),
            ));
        }
        let mut bound = BTreeMap::new();
        for (param, arg) in params.iter().zip(args) {
            if let Some(open) = generic::open_parameter(arg, &params)
                && !self.types.contains(&open.to_string())
                && !self.bound.contains_key(&open.to_string())
            {
                return Err(err(
                    open.span(),
                    format!(
                        "type parameter `{open}` is left open in `{name}<...>`: a manifest \
                         schema is concrete; name a concrete type here, e.g. `{name}<Task>` with \
                         `Task` a schema type of this module"
                    ),
                ));
            }
            let schema = self.type_schema(arg)?;
            bound.insert(param.to_string(), (self.name_of(arg)?, schema));
        }
        let instance_name = self.name_of(t)?;
        if let Some(done) = self.instances.get(&instance_name) {
            return Ok(done.clone());
        }
        let schema = self.enter(&instance_name, seg.span(), home, input, bound)?;
        self.instances.insert(instance_name, schema.clone());
        Ok(schema)
    }

    /// The manifest name of a type expression written in the current
    /// context (bound parameters read as their arguments' names).
    pub(super) fn name_of(&self, t: &syn::Type) -> syn::Result<String> {
        generic::expression_name(t, &|p| {
            if let Some(ident) = p.get_ident()
                && let Some((name, _)) = self.bound.get(&ident.to_string())
            {
                return (vec![name.clone()], false);
            }
            let full = self.types.imports.resolve(p);
            let declared = match full.as_slice() {
                [one] => self.types.items.get(one),
                _ => self
                    .library
                    .home(&full)
                    .and_then(|(home, item)| home.items.get(item)),
            };
            let generic = declared.is_some_and(|d| !d.generics.params.is_empty());
            (full, generic)
        })
    }

    fn named(&mut self, name: &str, span: Span) -> syn::Result<Json> {
        let types = self.types;
        let Some(input) = types.items.get(name) else {
            return Err(err(span, format!("unknown schema type `{name}`")));
        };
        self.enter(name, span, types, input, BTreeMap::new())
    }

    /// Derives `input` (declared in `home`) under `name` with `bound`
    /// parameters, refusing recursion through it.
    fn enter(
        &mut self,
        name: &str,
        span: Span,
        home: &'a SchemaTypes,
        input: &syn::DeriveInput,
        bound: BTreeMap<String, (String, Json)>,
    ) -> syn::Result<Json> {
        if self.stack.iter().any(|n| n == name) {
            let cycle = self.stack.join(" -> ");
            return Err(err(
                span,
                format!(
                    "recursive schema type `{name}` ({cycle} -> {name}): manifest schemas are \
                     self-contained without `$ref`, so recursion cannot be expressed; \
                     break the cycle (e.g. store child ids instead of children)"
                ),
            ));
        }
        self.stack.push(name.to_owned());
        let types = std::mem::replace(&mut self.types, home);
        let outer = std::mem::replace(&mut self.bound, bound);
        let result = self.container(input);
        self.bound = outer;
        self.types = types;
        self.stack.pop();
        result
    }
}
