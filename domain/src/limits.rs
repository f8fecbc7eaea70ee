//! Limits on what one caller may do to other people: register them, add them to organisations,
//! or register again and again after cancelling. Each would otherwise let one account mail
//! strangers without end or book a gathering out. They are counted from the database, so every
//! server sharing it agrees.

/// How much one caller may do to others; the API reads each from a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// People one caller may register on their behalf for one gathering.
    pub on_behalf_per_gathering: u32,
    /// Registrations on behalf of others one caller may make in an hour, over all gatherings.
    pub on_behalf_per_hour: u32,
    /// Times one person may register again for a gathering after cancelling, in a day.
    pub rejoins_per_day: u32,
    /// Members one caller may add to organisations in an hour.
    pub members_added_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            on_behalf_per_gathering: 10,
            on_behalf_per_hour: 20,
            rejoins_per_day: 3,
            members_added_per_hour: 30,
        }
    }
}

/// Queues, on PostgreSQL, every transaction counting against `key` until this one ends, so a
/// count taken next cannot be passed by several servers at once. SQLite writes one at a time.
pub(crate) async fn serialise_count(
    conn: &impl sea_orm::ConnectionTrait,
    key: &str,
) -> Result<(), sea_orm::DbErr> {
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        conn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}
