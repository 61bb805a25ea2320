//! Reading `[roles]`, `[limits]`, `[flags]` and `[scale]`.

use super::values::Reader;
use super::{Item, RawRoles};
use crate::load::read::values::parse_rate;
use crate::model::*;
use std::collections::BTreeMap;

impl Reader<'_, '_> {
    /// Each role and what it inherits; whether those exist is for the resolve stage.
    pub(super) fn read_roles(&mut self, item: &Item<'_>) -> RawRoles {
        let mut roles = BTreeMap::new();
        if let Some(t) = self.table(item, "[roles]") {
            for (name, v) in t.iter() {
                let n = name.get_ref().to_string();
                if !self.check_name(&n, name.span().start, "role") {
                    continue;
                }
                let Some(rt) = self.table(v, "a role") else {
                    continue;
                };
                let mut role = Role::default();
                for (k, rv) in rt.iter() {
                    match k.get_ref().as_ref() {
                        "inherits" => {
                            for parent in self.string_list(rv, "inherits").unwrap_or_default() {
                                role.inherits.push(parent.value);
                            }
                        }
                        _ => self.unknown_key(k, "a role", &["inherits"]),
                    }
                }
                roles.insert(n, role);
            }
        }
        RawRoles {
            roles,
            span: item.span(),
        }
    }

    pub(super) fn read_limits(&mut self, item: &Item<'_>) -> Vec<Limit> {
        let mut limits = Vec::new();
        let Some(t) = self.table(item, "[limits]") else {
            return limits;
        };
        for (k, v) in t.iter() {
            let key = k.get_ref().to_string();
            let valid_key = key == "anonymous"
                || key == "authenticated"
                || key.split_once(' ').is_some_and(|(m, p)| {
                    matches!(m, "GET" | "POST" | "PATCH" | "PUT" | "DELETE") && p.starts_with('/')
                });
            if !valid_key {
                self.error(
                    k.span().start,
                    format!("`{key}` is not a limit key"),
                    Some(
                        "use `anonymous`, `authenticated` or a route like \"POST /v1/posts\""
                            .into(),
                    ),
                );
                continue;
            }
            let Some(s) = self.string(v, "a limit") else {
                continue;
            };
            match parse_rate(&s.value) {
                Some((requests, per_secs)) => limits.push(Limit {
                    key,
                    requests,
                    per_secs,
                    span: k.span(),
                }),
                None => self.error(
                    s.span.start,
                    format!("`{}` is not a rate", s.value),
                    Some("write requests per period: \"60/min\", \"10/s\", \"1000/hour\"".into()),
                ),
            }
        }
        limits
    }

    pub(super) fn read_flags(&mut self, item: &Item<'_>) -> BTreeMap<String, Flag> {
        let mut flags = BTreeMap::new();
        let Some(t) = self.table(item, "[flags]") else {
            return flags;
        };
        for (name, v) in t.iter() {
            let n = name.get_ref().to_string();
            if !self.check_name(&n, name.span().start, "flag") {
                continue;
            }
            let Some(ft) = self.table(v, "a flag") else {
                continue;
            };
            let mut flag = Flag { rollout: 100 };
            for (k, fv) in ft.iter() {
                match k.get_ref().as_ref() {
                    "rollout" => match self.int(fv, "rollout") {
                        Some(p @ 0..=100) => flag.rollout = p as u8,
                        Some(_) => self.error(
                            fv.span().start,
                            "rollout is a percentage from 0 to 100",
                            None,
                        ),
                        None => {}
                    },
                    _ => self.unknown_key(k, "a flag", &["rollout"]),
                }
            }
            flags.insert(n, flag);
        }
        flags
    }

    pub(super) fn read_scale(&mut self, item: &Item<'_>) -> Scale {
        let mut scale = Scale::default();
        let Some(t) = self.table(item, "[scale]") else {
            return scale;
        };
        for (k, v) in t.iter() {
            let slot = match k.get_ref().as_ref() {
                "users" => &mut scale.users,
                "peak_rps" => &mut scale.peak_rps,
                "read_write_ratio" => &mut scale.read_write_ratio,
                "records_per_user" => &mut scale.records_per_user,
                "nodes" => &mut scale.nodes,
                _ => {
                    self.unknown_key(
                        k,
                        "[scale]",
                        &[
                            "users",
                            "peak_rps",
                            "read_write_ratio",
                            "records_per_user",
                            "nodes",
                        ],
                    );
                    continue;
                }
            };
            *slot = self.count(v, "a scale figure");
        }
        scale
    }
}
