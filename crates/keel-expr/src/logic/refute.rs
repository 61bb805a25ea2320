//! The decision procedure for one conjunction of literals (see the parent module's
//! method), and its reduction to a minimal core.

use super::Case;
use super::build::{ALL, Atom, Builder, EQ, Lit};
use super::values::Values;
use crate::error::Span;

impl Builder<'_> {
    /// The terms an atom constrains.
    fn atom_terms(&self, atom: usize) -> Vec<usize> {
        match &self.atoms[atom] {
            Atom::IsNull(t) | Atom::Value(t, _) => vec![*t],
            Atom::Pair(a, b, _) => vec![*a, *b],
            Atom::Const(_) | Atom::Opaque => Vec::new(),
        }
    }

    /// A minimal refutation of the conjunction `lits`, or `None` if it cannot be refuted.
    pub(super) fn case(&self, lits: &[Lit]) -> Option<Case> {
        if !self.refuted(lits, None) {
            return None;
        }
        let mut core = lits.to_vec();
        let mut i = 0;
        while i < core.len() {
            let mut trial = core.clone();
            trial.remove(i);
            if self.refuted(&trial, None) {
                core = trial;
            } else {
                i += 1;
            }
        }
        let mut not_null: Vec<Vec<String>> = Vec::new();
        let mut seen: Vec<usize> = Vec::new();
        for l in &core {
            for t in self.atom_terms(l.atom) {
                if self.terms[t].nullable || seen.contains(&t) {
                    continue;
                }
                seen.push(t);
                if !self.refuted(&core, Some(t)) {
                    for p in &self.terms[t].paths {
                        if !not_null.contains(p) {
                            not_null.push(p.clone());
                        }
                    }
                }
            }
        }
        let mut spans: Vec<Span> = core.iter().map(|l| l.span).collect();
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup();
        Some(Case { spans, not_null })
    }

    /// Whether no assignment satisfies every literal of `lits`. `relaxed` is a term
    /// to treat as nullable whatever the model says (to see which facts a proof uses).
    fn refuted(&self, lits: &[Lit], relaxed: Option<usize>) -> bool {
        for (i, l) in lits.iter().enumerate() {
            match &self.atoms[l.atom] {
                Atom::Const(b) if *b != l.positive => return true,
                Atom::Opaque
                    if lits[..i]
                        .iter()
                        .any(|m| m.atom == l.atom && m.positive != l.positive) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        // NULL or not, per term. A term that may be NULL and is not required not to
        // be is taken as NULL: every negated comparison on it then holds.
        let n = self.terms.len();
        let mut must_null = vec![false; n];
        let mut not_null: Vec<bool> = (0..n)
            .map(|t| !self.terms[t].nullable && relaxed != Some(t))
            .collect();
        for l in lits {
            let atom = &self.atoms[l.atom];
            if let Atom::IsNull(t) = atom
                && l.positive
            {
                must_null[*t] = true;
            }
            for t in self.atom_terms(l.atom) {
                if forces_not_null(atom, l.positive, t) {
                    not_null[t] = true;
                }
            }
        }
        if (0..n).any(|t| must_null[t] && not_null[t]) {
            return true;
        }
        for (t, term) in self.terms.iter().enumerate() {
            if !not_null[t] {
                continue;
            }
            let mut values = Values::new(&term.ty);
            for l in lits {
                if let Atom::Value(u, c) = &self.atoms[l.atom]
                    && *u == t
                {
                    values.restrict(c, l.positive);
                }
            }
            if values.is_empty() {
                return true;
            }
        }
        let mut pairs: Vec<(usize, usize, u8)> = Vec::new();
        for l in lits {
            let Atom::Pair(a, b, m) = &self.atoms[l.atom] else {
                continue;
            };
            if !(not_null[*a] && not_null[*b]) {
                continue;
            }
            let m = if l.positive { *m } else { ALL & !*m };
            match pairs.iter_mut().find(|p| p.0 == *a && p.1 == *b) {
                Some(p) => p.2 &= m,
                // A term compared with itself can only be equal to itself.
                None => pairs.push((*a, *b, if a == b { m & EQ } else { m })),
            }
        }
        pairs.iter().any(|p| p.2 == 0)
    }
}

/// Whether a literal requires term `t` not to be NULL.
fn forces_not_null(atom: &Atom, positive: bool, t: usize) -> bool {
    match atom {
        Atom::IsNull(u) => !positive && *u == t,
        Atom::Value(u, _) => positive && *u == t,
        Atom::Pair(a, b, _) => positive && (*a == t || *b == t),
        Atom::Const(_) | Atom::Opaque => false,
    }
}
