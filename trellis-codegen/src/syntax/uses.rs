//! `#[uses(contract = ..., rpc = [...], ...)]` on a marker struct: a
//! contract this one calls, required or optional, under an alias.

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
