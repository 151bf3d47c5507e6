//! `#[uses(contract = ..., rpc = [...], ...)]` on a marker struct: a
//! contract this one calls, required or optional, under an alias.

use std::collections::BTreeMap;

use syn::LitStr;

use super::{Contract, Parser, UseDecl};
use trellis_manifest::manifest::{UseCall, UsePubSub, UseRef, UsesGrouped};
use trellis_manifest::names;

impl Parser {
    pub(super) fn uses(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
        uses: &mut UsesGrouped,
    ) {
        let Some(mut a) = self.args(
            attr,
            "uses",
            &[
                "contract",
                "rpc",
                "operations",
                "publish",
                "subscribe",
                "optional",
                "alias",
                "module",
            ],
        ) else {
            return;
        };
        let contract = a.str("contract");
        let module = a.path("module");
        let rpc = a.str_list("rpc");
        let operations = a.str_list("operations");
        let publish = a.str_list("publish");
        let subscribe = a.str_list("subscribe");
        let optional = a.bool("optional").map(|(b, _)| b).unwrap_or(false);
        let _ = a.str("alias");
        let span = a.span();
        if contract.is_none() {
            a.errors().at(
                span,
                "#[uses] needs the used contract: add `contract = \"<name>@v<N>\"`",
            );
        }
        a.finish();
        let Some(contract) = contract else {
            return;
        };
        if !names::valid_contract_id(&contract.value()) {
            self.errors.at(
                contract.span(),
                format!(
                    "invalid contract id `{}`: write `<name>@v<N>`, e.g. `documents@v1`",
                    contract.value()
                ),
            );
            return;
        }
        let alias = self
            .uses
            .get(&s.ident.to_string())
            .cloned()
            .unwrap_or_else(|| names::snake_case(&s.ident.to_string()));
        let norm = names::normalized(&alias);
        if let Some(other) = uses
            .required
            .keys()
            .chain(uses.optional.keys())
            .find(|a| names::normalized(a) == norm)
        {
            self.errors.at(
                s.ident.span(),
                format!("duplicate uses alias `{alias}` (collides with `{other}`); rename one"),
            );
            return;
        }
        let group = if optional { "optional" } else { "required" };
        self.spans
            .insert(["uses", group, alias.as_str()], s.ident.span());
        let names_of =
            |l: Option<Vec<LitStr>>| l.map(|l| l.iter().map(LitStr::value).collect::<Vec<_>>());
        for (kind, list) in [
            ("rpc", &rpc),
            ("operations", &operations),
            ("publish", &publish),
            ("subscribe", &subscribe),
        ] {
            for lit in list.iter().flatten() {
                if !names::valid_surface_name(&lit.value()) {
                    self.errors.at(
                        lit.span(),
                        format!(
                            "`{}` in `{kind}` is not a `<Group>.<Leaf>` name",
                            lit.value()
                        ),
                    );
                }
            }
        }
        let (publish, subscribe) = (names_of(publish), names_of(subscribe));
        let r = UseRef {
            contract: contract.value(),
            rpc: names_of(rpc).map(|call| UseCall { call: Some(call) }),
            operations: names_of(operations).map(|call| UseCall { call: Some(call) }),
            events: (publish.is_some() || subscribe.is_some())
                .then_some(UsePubSub { publish, subscribe }),
            feeds: None,
        };
        if optional {
            uses.optional.insert(alias.clone(), r);
        } else {
            uses.required.insert(alias.clone(), r);
        }
        out.uses.push(UseDecl {
            alias,
            ident: s.ident.clone(),
            contract: contract.value(),
            module,
            docs: s
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .cloned()
                .collect(),
        });
    }
}

/// The accessor types a client surface generates for `names` with type
/// prefix `prefix`: `<prefix><Group...><suffix>` for every group path of
/// every name, as `expand::client` names them.
fn accessor_types(
    prefix: &str,
    names: &[String],
    suffix: &str,
    out: &mut BTreeMap<String, String>,
    origin: &str,
) {
    for name in names {
        let segments: Vec<&str> = name.split('.').collect();
        let groups = if segments.len() > 1 {
            &segments[..segments.len() - 1]
        } else {
            &segments[..]
        };
        let mut ty = prefix.to_owned();
        for group in groups {
            ty.push_str(&names::pascal_case(&names::snake_case(group)));
            out.entry(format!("{ty}{suffix}"))
                .or_insert_with(|| format!("{origin} `{name}`"));
        }
    }
}

impl Parser {
    /// A `uses` facade's accessor types are prefixed with its marker's name
    /// (`Docs` gives `DocsRpc`); the contract's own client types are not
    /// (`Docs.List` gives `DocsRpc` too). Two items of one name would be a
    /// confusing rustc error inside the expansion, so it is one here, at
    /// the marker.
    pub(super) fn facade_names_are_free(&mut self, out: &Contract) {
        let mut own = BTreeMap::new();
        let m = &out.manifest;
        for (names, suffix, origin) in [
            (m.rpc.keys().cloned().collect::<Vec<_>>(), "Rpc", "RPC"),
            (
                m.operations.keys().cloned().collect(),
                "Operations",
                "operation",
            ),
            (
                m.events.keys().cloned().collect(),
                "EventListeners",
                "event",
            ),
        ] {
            accessor_types("", &names, suffix, &mut own, origin);
        }
        let selected = out
            .manifest
            .uses
            .as_ref()
            .map(|u| u.all())
            .unwrap_or_default();
        for decl in out.uses.iter().filter(|d| d.module.is_some()) {
            let Some(used) = selected.get(decl.alias.as_str()) else {
                continue;
            };
            let prefix = decl.ident.to_string();
            let mut facade = BTreeMap::new();
            for suffix in ["Rpc", "Operations", "EventListeners"] {
                facade.insert(format!("{prefix}{suffix}"), String::new());
            }
            let list = |l: Option<&Vec<String>>| l.cloned().unwrap_or_default();
            for (names, suffix) in [
                (list(used.rpc.as_ref().and_then(|c| c.call.as_ref())), "Rpc"),
                (
                    list(used.operations.as_ref().and_then(|c| c.call.as_ref())),
                    "Operations",
                ),
                (
                    list(used.events.as_ref().and_then(|e| e.subscribe.as_ref())),
                    "EventListeners",
                ),
            ] {
                accessor_types(&prefix, &names, suffix, &mut facade, "");
            }
            if let Some((ty, origin)) = facade
                .keys()
                .find_map(|ty| own.get(ty).map(|origin| (ty, origin)))
            {
                self.errors.at(
                    decl.ident.span(),
                    format!(
                        "the `uses` marker `{prefix}` names its facade types `{prefix}Rpc`, \
                         `{prefix}Operations`, ...; `{ty}` is also the accessor type of this \
                         contract's own {origin}: rename the marker (e.g. `{prefix}Peer`, \
                         keeping `alias = \"{}\"`)",
                        decl.alias
                    ),
                );
            }
        }
    }
}
