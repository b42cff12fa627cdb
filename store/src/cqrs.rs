//! cqrs-es persistence over the global log.
//!
//! [`LedgerEventStore`] implements cqrs-es's `EventStore`, so a `CqrsFramework` runs on it
//! unchanged. [`CommandBus`] is `CqrsFramework::execute_with_metadata` with two differences the
//! product needs: it returns the committed events with their positions (every write answer
//! carries its position, SPEC §5.2; cqrs-es 0.5's `execute` returns `()`), and it retries a
//! command that lost an optimistic-concurrency race, so the loser sees the winner's state
//! (e.g. "already revoked") instead of a bare conflict.

use std::collections::HashMap;
use std::marker::PhantomData;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope, EventStore,
};

use crate::error::StoreError;
use crate::event::{
    Append, Credential, Guard, IdempotencyClaim, NewEvent, Provenance, StoredEvent,
};
use crate::Store;

/// Who writes, under which request, with which idempotency key and unique claims. Travels
/// through cqrs-es as its `metadata` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMeta {
    pub provenance: Provenance,
    pub idempotency: Option<IdempotencyClaim>,
    pub unique_claims: Vec<String>,
    /// The command restricts access (a revocation, a suspension): see [`crate::Guard`].
    pub restricts: bool,
    /// The digest of a bearer token the command issues to its principal (the aggregate):
    /// written to the credentials table with its event, never into the log.
    pub credential: Option<String>,
    /// A webhook key the command makes for its endpoint (the aggregate), kept beside the log.
    pub webhook_key: Option<crate::event::WebhookKeyRow>,
    /// Webhook messages the command causes, queued in its commit (SPEC §13).
    pub outbox: Vec<crate::event::OutboxMessage>,
}

const ACTOR: &str = "actor";
const REQUEST_ID: &str = "request_id";
const IDEMPOTENCY_SCOPE: &str = "idempotency_scope";
const IDEMPOTENCY_KEY: &str = "idempotency_key";
const IDEMPOTENCY_FINGERPRINT: &str = "idempotency_fingerprint";
const UNIQUE_CLAIM: &str = "unique_claim";
const RESTRICTS: &str = "restricts";
const CREDENTIAL: &str = "credential_sha256";
const POSITION: &str = "position";
const RECORDED_AT: &str = "recorded_at";

impl CommandMeta {
    pub fn new(actor: impl Into<String>, request_id: impl Into<String>) -> Self {
        Self {
            provenance: Provenance {
                actor: actor.into(),
                request_id: request_id.into(),
            },
            idempotency: None,
            unique_claims: Vec::new(),
            restricts: false,
            credential: None,
            webhook_key: None,
            outbox: Vec::new(),
        }
    }

    pub fn into_metadata(self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (ACTOR.to_owned(), self.provenance.actor),
            (REQUEST_ID.to_owned(), self.provenance.request_id),
        ]);
        if let Some(claim) = self.idempotency {
            map.insert(IDEMPOTENCY_SCOPE.to_owned(), claim.scope);
            map.insert(IDEMPOTENCY_KEY.to_owned(), claim.key);
            map.insert(IDEMPOTENCY_FINGERPRINT.to_owned(), claim.fingerprint);
        }
        if self.restricts {
            map.insert(RESTRICTS.to_owned(), "true".to_owned());
        }
        if let Some(digest) = self.credential {
            map.insert(CREDENTIAL.to_owned(), digest);
        }
        // One claim per command is all the domain needs (a tracking number).
        if let Some(claim) = self.unique_claims.into_iter().next() {
            map.insert(UNIQUE_CLAIM.to_owned(), claim);
        }
        map
    }

    pub fn from_metadata(map: &HashMap<String, String>) -> Self {
        let get = |k: &str| map.get(k).cloned();
        let idempotency = match (
            get(IDEMPOTENCY_SCOPE),
            get(IDEMPOTENCY_KEY),
            get(IDEMPOTENCY_FINGERPRINT),
        ) {
            (Some(scope), Some(key), Some(fingerprint)) => Some(IdempotencyClaim {
                scope,
                key,
                fingerprint,
            }),
            _ => None,
        };
        Self {
            provenance: Provenance {
                actor: get(ACTOR).unwrap_or_else(|| "unknown".into()),
                request_id: get(REQUEST_ID).unwrap_or_default(),
            },
            idempotency,
            unique_claims: get(UNIQUE_CLAIM).into_iter().collect(),
            restricts: get(RESTRICTS).is_some(),
            credential: get(CREDENTIAL),
            // A secret never travels in cqrs-es metadata: only `CommandBus` carries one, and
            // the outbox.
            webhook_key: None,
            outbox: Vec::new(),
        }
    }
}

/// cqrs-es's view of the global log, for one aggregate type. A stream is
/// (`A::TYPE`, aggregate id).
pub struct LedgerEventStore<A> {
    store: Store,
    aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for LedgerEventStore<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            aggregate: PhantomData,
        }
    }
}

/// An aggregate loaded from its stream, and the stream version it was loaded at.
pub struct LedgerContext<A> {
    pub aggregate_id: String,
    pub aggregate: A,
    pub version: u64,
}

impl<A: Aggregate> AggregateContext<A> for LedgerContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

impl<A: Aggregate> LedgerEventStore<A> {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            aggregate: PhantomData,
        }
    }

    fn decode(event: &StoredEvent) -> Result<A::Event, StoreError> {
        event.decode().map_err(|e| StoreError::Corrupt {
            position: i64::try_from(event.position.get()).unwrap_or(i64::MAX),
            detail: format!("{} payload: {e}", event.event_type),
        })
    }

    /// Loads the aggregate by replaying its stream.
    pub async fn load(&self, aggregate_id: &str) -> Result<LedgerContext<A>, StoreError> {
        let stored = self.store.read_stream(A::TYPE, aggregate_id).await?;
        let mut aggregate = A::default();
        let version = stored.len() as u64;
        for event in &stored {
            aggregate.apply(Self::decode(event)?);
        }
        Ok(LedgerContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            version,
        })
    }

    /// Appends `events` after the version `context` was loaded at.
    pub async fn append(
        &self,
        events: Vec<A::Event>,
        context: &LedgerContext<A>,
        meta: CommandMeta,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut new_events = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let version = context.version + 1 + i as u64;
            new_events.push(
                NewEvent::from_domain(event, A::TYPE, &context.aggregate_id, version).map_err(
                    |e| StoreError::Corrupt {
                        position: -1,
                        detail: format!("cannot encode {}: {e}", event.event_type()),
                    },
                )?,
            );
        }
        self.store
            .append(Append {
                events: new_events,
                provenance: meta.provenance,
                idempotency: meta.idempotency,
                unique_claims: meta.unique_claims,
                credential: meta.credential.map(|token_sha256| Credential {
                    principal_id: context.aggregate_id.clone(),
                    token_sha256,
                }),
                erasure: None,
                webhook_key: meta.webhook_key,
                outbox: meta.outbox,
                tracking: Vec::new(),
                guard: Guard {
                    restricts: meta.restricts,
                    decided_before: None,
                },
            })
            .await
    }

    fn envelope(event: &StoredEvent) -> Result<EventEnvelope<A>, StoreError> {
        Ok(EventEnvelope {
            aggregate_id: event.stream_id.clone(),
            sequence: event.stream_version as usize,
            payload: Self::decode(event)?,
            metadata: HashMap::from([
                (POSITION.to_owned(), event.position.to_string()),
                (ACTOR.to_owned(), event.actor.clone()),
                (REQUEST_ID.to_owned(), event.request_id.clone()),
                (RECORDED_AT.to_owned(), event.recorded_at.to_rfc3339()),
            ]),
        })
    }
}

fn aggregate_error<E: std::error::Error>(err: StoreError) -> AggregateError<E> {
    match err {
        StoreError::Conflict { .. } => AggregateError::AggregateConflict,
        StoreError::Unavailable(_) | StoreError::ShuttingDown => {
            AggregateError::DatabaseConnectionError(Box::new(err))
        }
        StoreError::Corrupt { .. } => AggregateError::DeserializationError(Box::new(err)),
        other => AggregateError::UnexpectedError(Box::new(other)),
    }
}

impl<A: Aggregate> EventStore<A> for LedgerEventStore<A> {
    type AC = LedgerContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let stored = self
            .store
            .read_stream(A::TYPE, aggregate_id)
            .await
            .map_err(aggregate_error)?;
        stored
            .iter()
            .map(|e| Self::envelope(e).map_err(aggregate_error))
            .collect()
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        self.load(aggregate_id).await.map_err(aggregate_error)
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self
            .append(events, &context, CommandMeta::from_metadata(&metadata))
            .await
            .map_err(aggregate_error)?;
        stored
            .iter()
            .map(|e| Self::envelope(e).map_err(aggregate_error))
            .collect()
    }
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused it (a domain rule).
    #[error(transparent)]
    Rejected(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lost optimistic-concurrency races a command is retried after before giving up.
const CONFLICT_RETRIES: usize = 3;

/// How a command's first attempt finds its aggregate.
#[derive(Debug, Clone, Copy)]
enum Stream {
    /// Read from the log.
    Read,
    /// Taken as new, with no events (the caller has just made its id).
    New,
}

/// Executes commands of one aggregate type and returns what they committed.
pub struct CommandBus<A: Aggregate> {
    store: LedgerEventStore<A>,
    services: A::Services,
}

impl<A> CommandBus<A>
where
    A: Aggregate,
    A::Command: Clone,
{
    pub fn new(store: Store, services: A::Services) -> Self {
        Self {
            store: LedgerEventStore::new(store),
            services,
        }
    }

    /// Loads the aggregate (for reads that need its rules, e.g. what an approval would grant).
    pub async fn load(&self, aggregate_id: &str) -> Result<A, StoreError> {
        Ok(self.store.load(aggregate_id).await?.aggregate)
    }

    pub fn services(&self) -> &A::Services {
        &self.services
    }

    /// load → handle → append, durably. Returns the committed events with their positions.
    #[tracing::instrument(skip(self, command, meta), fields(aggregate = A::TYPE))]
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: CommandMeta,
    ) -> Result<Vec<StoredEvent>, CommandError<A::Error>> {
        self.run(aggregate_id, command, meta, Stream::Read).await
    }

    /// [`CommandBus::execute`] for a command that makes an aggregate whose id the caller has
    /// just made (a new UUIDv7): it is handled on the aggregate's initial state without reading
    /// the stream, which a new id cannot have — one read fewer for every grant or
    /// registration, a round trip on PostgreSQL. Should the stream hold events after all, the
    /// log's version check refuses the append of version 1 (nothing of it is recorded) and the
    /// command is handled again on the aggregate as read, as [`CommandBus::execute`] handles a
    /// lost race. Not for commands on an existing aggregate: refused by the initial state, they
    /// would be refused without reading it.
    #[tracing::instrument(skip(self, command, meta), fields(aggregate = A::TYPE))]
    pub async fn create(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: CommandMeta,
    ) -> Result<Vec<StoredEvent>, CommandError<A::Error>> {
        self.run(aggregate_id, command, meta, Stream::New).await
    }

    async fn run(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: CommandMeta,
        first: Stream,
    ) -> Result<Vec<StoredEvent>, CommandError<A::Error>> {
        let mut attempt = 0;
        loop {
            let mut context = match (first, attempt) {
                (Stream::New, 0) => LedgerContext {
                    aggregate_id: aggregate_id.to_owned(),
                    aggregate: A::default(),
                    version: 0,
                },
                _ => self.store.load(aggregate_id).await?,
            };
            let sink = EventSink::<A>::default();
            context
                .aggregate
                .handle(command.clone(), &self.services, &sink)
                .await
                .map_err(CommandError::Rejected)?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Vec::new());
            }
            match self.store.append(events, &context, meta.clone()).await {
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                other => return other.map_err(CommandError::Store),
            }
        }
    }
}
