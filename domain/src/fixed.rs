//! Statements whose text never changes, only their values: sea-query writes the text once per
//! backend, and each run binds its own values to it. Building a select (its columns, joins and
//! conditions, then the text) took more of a small page's time than decoding its row.

use std::sync::OnceLock;

use sea_orm::{DbBackend, Statement, Value};

/// The text of one statement, on each backend, once it has been built, with how many values
/// it binds.
///
/// Only for statements whose text cannot depend on their values: sea-query writes `IS NULL`
/// for a null compared with `eq`, and a cast after an enum on PostgreSQL, so a statement with
/// an `Option` or enum value, or a filter added only for some inputs, is not fixed.
pub(crate) struct Fixed {
    postgres: OnceLock<(String, usize)>,
    sqlite: OnceLock<(String, usize)>,
    other: OnceLock<(String, usize)>,
}

impl Fixed {
    pub(crate) const fn new() -> Self {
        Self {
            postgres: OnceLock::new(),
            sqlite: OnceLock::new(),
            other: OnceLock::new(),
        }
    }

    /// The statement `build` makes, with `values` bound in place of the ones it was built
    /// with: `values` must be the built statement's own values, in order. `build` runs the
    /// first time on each backend. In debug builds (every test) it runs every time too, and a
    /// text or values that differ from what it builds panic, so a change to one that is not
    /// made to the other cannot pass the tests; the statement returned is still the one made
    /// from the kept text, as in a release build.
    pub(crate) fn statement(
        &self,
        backend: DbBackend,
        values: Vec<Value>,
        build: impl FnOnce() -> Statement,
    ) -> Statement {
        let kept = match backend {
            DbBackend::Postgres => &self.postgres,
            DbBackend::Sqlite => &self.sqlite,
            _ => &self.other,
        };
        let (sql, count) = if cfg!(debug_assertions) {
            let built = build();
            let built_values = built.values.map(|v| v.0).unwrap_or_default();
            let kept = kept.get_or_init(|| (built.sql.clone(), built_values.len()));
            assert_eq!(kept.0, built.sql, "a fixed statement's text changed");
            // The values themselves are not printed: they may be token hashes or emails.
            assert!(
                built_values == values,
                "a fixed statement's values differ from those it was built with: {}",
                built.sql
            );
            kept
        } else {
            kept.get_or_init(|| {
                let built = build();
                let count = built.values.as_ref().map_or(0, |v| v.0.len());
                (built.sql, count)
            })
        };
        assert_eq!(
            *count,
            values.len(),
            "a fixed statement was given another number of values than it binds: {sql}"
        );
        Statement::from_sql_and_values(backend, sql.clone(), values)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{
        EntityTrait, QueryFilter, QueryTrait,
        sea_query::{Expr, ExprTrait},
    };

    use super::*;
    use crate::entities::change;

    fn by_code(code: &str) -> Statement {
        change::Entity::find()
            .filter(Expr::col(change::Column::Code).eq(code))
            .build(DbBackend::Postgres)
    }

    #[test]
    fn the_text_is_built_once_and_each_run_binds_its_own_values() {
        static FIXED: Fixed = Fixed::new();
        let first = FIXED.statement(DbBackend::Postgres, vec!["A".into()], || by_code("A"));
        let second = FIXED.statement(DbBackend::Postgres, vec!["B".into()], || by_code("B"));
        assert_eq!(first.sql, second.sql);
        assert_eq!(second.values.map(|v| v.0), Some(vec![Value::from("B")]));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "values differ")]
    fn values_that_are_not_the_built_ones_are_refused() {
        static FIXED: Fixed = Fixed::new();
        FIXED.statement(DbBackend::Postgres, vec!["B".into()], || by_code("A"));
    }
}
