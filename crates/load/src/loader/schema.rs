//! A `SCHEMA` message: its layout compiled, evolved against what the warehouse holds, its
//! tables prepared (or held until a record types its open places).

use std::sync::Arc;

use observes_model::infer::SchemaInference;
use observes_model::{Layout, Normalizer, TableChange};
use observes_singer::SchemaMessage;
use observes_warehouse::sql;
use serde_json::Value;

use super::*;

impl Loader<'_> {
    pub(super) fn schema(&mut self, line: u64, message: SchemaMessage) -> Result<(), LoadError> {
        let hash = schema_hash(&message.schema, &message.key_properties);
        let name = &message.stream;
        let repeated = match self.held.get(name) {
            Some(held) => held.hash == hash,
            None => self
                .streams
                .get(name)
                .is_some_and(|s| s.schema_hash == hash),
        };
        if repeated {
            return Ok(()); // Taps repeat their SCHEMA; nothing changed.
        }
        if self.config.untyped == Untyped::Infer {
            let inference = SchemaInference::new(&message.schema);
            if inference.is_open() {
                // A schema that cannot be loaded fails at its own line, record or not; an
                // open root (no properties at all, as a REST definition without a schema
                // sends) is all typed from the records.
                let open_root = message
                    .schema
                    .get("properties")
                    .and_then(serde_json::Value::as_object)
                    .is_none_or(|p| p.is_empty());
                if !open_root {
                    let max = self.wh.dialect().max_identifier;
                    Layout::compile(name, &message.schema, &message.key_properties, max)
                        .map_err(|source| LoadError::Schema { line, source })?;
                }
                self.held.insert(
                    name.clone(),
                    HeldSchema {
                        line,
                        message,
                        hash,
                        inference,
                    },
                );
                return Ok(());
            }
        }
        self.held.remove(name);
        self.apply_schema(line, message, hash, None)
    }

    /// Fits the tables to a stream's (new) schema: creates or evolves them, and switches the
    /// stream's rows over to it.
    pub(super) fn apply_schema(
        &mut self,
        line: u64,
        message: SchemaMessage,
        hash: String,
        inference: Option<SchemaInference>,
    ) -> Result<(), LoadError> {
        let dialect = self.wh.dialect();
        let mut layout = self.compile_layout(line, &message)?;
        layout.max_text_bytes = dialect.max_text_bytes;
        let write_mode = match self.config.write_mode {
            WriteMode::Merge if layout.key_properties.is_empty() => {
                if self.config.on_missing_key == OnMissingKey::Fail {
                    return Err(LoadError::MergeWithoutKeys {
                        line,
                        stream: message.stream,
                    });
                }
                WriteMode::Append
            }
            mode => mode,
        };
        let previous = self.streams.get(&message.stream);
        if write_mode != self.config.write_mode
            && previous.is_none_or(|s| s.write_mode != write_mode)
        {
            tracing::warn!(
                stream = %message.stream,
                line,
                "the SCHEMA has no key_properties: the stream is loaded as append, not merge \
                 (on_missing_key = \"fail\" refuses such a stream)"
            );
        }
        if let Some(existing) = previous {
            let from = &existing.normalizer.layout().key_properties;
            if self.config.write_mode == WriteMode::Merge && *from != layout.key_properties {
                // The key evolved: what came under the old key is merged on it, and the
                // records from here on are merged on the new one.
                tracing::warn!(
                    stream = %message.stream,
                    line,
                    from = ?from,
                    to = ?layout.key_properties,
                    "the stream's key properties changed: records from this line on are merged on the new key"
                );
            }
            // The old layout's rows go to the warehouse before the tables change under them.
            self.flush_stream(&message.stream)?;
            self.apply_merge(&message.stream)?;
        } else {
            self.order.push(message.stream.clone());
        }
        let aside_ready = self
            .streams
            .get(&message.stream)
            .is_some_and(|s| s.aside_ready);
        let committed = self
            .streams
            .get(&message.stream)
            .map(|s| s.committed.clone())
            .unwrap_or_default();
        let pending = self
            .streams
            .get(&message.stream)
            .map(|s| s.pending.clone())
            .unwrap_or_default();
        let activate_version = self
            .streams
            .get(&message.stream)
            .is_some_and(|s| s.activate_version);
        let mut stream = Stream {
            normalizer: Normalizer::new(Arc::new(layout.clone())),
            write_mode,
            prepared: false,
            committed,
            pending,
            staged: false,
            aside_ready,
            activate_version,
            schema_hash: hash,
            raw_schema: message.schema,
            inference,
        };
        // Fit the layout to the tables as they are now, so batches match them column for
        // column.
        self.ensure_transaction()?;
        let layout = self.prepare_tables(line, layout, &mut stream)?;
        stream.normalizer = Normalizer::new(Arc::new(layout));
        stream.prepared = true;
        self.streams.insert(message.stream.clone(), stream);
        Ok(())
    }

    /// Compiles a stream's layout into tables no other stream holds. Names are normalized,
    /// so streams `fooBar` and `foo_bar`, or `Jobs` and `jobs`, would both be `foo_bar` or
    /// `jobs`, and a stream `jobs__artifacts` would be the child table of `jobs`'s array.
    /// The first stream keeps the plain name; a later one gets the name with a hash of its
    /// own (recorded, so it keeps it on every later load).
    pub(super) fn compile_layout(
        &mut self,
        line: u64,
        message: &SchemaMessage,
    ) -> Result<Layout, LoadError> {
        let max = self.wh.dialect().max_identifier;
        if self.owners.is_none() {
            self.owners = Some(metadata::table_owners(self.wh, &self.config.schema)?);
        }
        let owners = self.owners.get_or_insert_with(Default::default);
        let stream = &message.stream;
        let compile = |root: &str| {
            Layout::compile_as(stream, root, &message.schema, &message.key_properties, max)
                .map_err(|source| LoadError::Schema { line, source })
        };
        let recorded = owners.root(stream).map(str::to_string);
        let mut layout = compile(
            &recorded
                .clone()
                .unwrap_or_else(|| Layout::root_table_name(stream, max)),
        )?;
        if recorded.is_none() && owners.conflict(&layout).is_some() {
            let distinct = Layout::distinct_root_table_name(stream, max);
            tracing::warn!(
                stream = %stream,
                table = %distinct,
                "the stream's name normalizes to a table another stream holds: it is loaded into its own table"
            );
            layout = compile(&distinct)?;
        }
        if let Some((table, owner)) = owners.conflict(&layout) {
            return Err(LoadError::TableTaken {
                line,
                stream: stream.clone(),
                table,
                holder: if owner.is_empty() {
                    "is one of Observes' own".into()
                } else {
                    format!("already holds stream {owner:?}")
                },
            });
        }
        owners.claim(&layout);
        Ok(layout)
    }

    /// Creates or evolves the tables a layout writes to; returns the layout fitted to them.
    pub(super) fn prepare_tables(
        &mut self,
        line: u64,
        mut layout: Layout,
        stream: &mut Stream,
    ) -> Result<Layout, LoadError> {
        let schema = self.config.schema.clone();
        let dialect = self.wh.dialect();
        self.wh.execute(&sql::create_schema(&schema), &[])?;
        let replace = self.config.write_mode == WriteMode::Replace;
        for i in 0..layout.tables.len() {
            let name = layout.tables[i].name.clone();
            let target = if replace {
                modes::aside_name(&name)
            } else {
                name.clone()
            };
            if replace && !stream.aside_ready {
                // A full reload starts from empty tables, whatever was left by a dead run.
                self.wh.execute(&sql::drop_table(&schema, &target), &[])?;
            }
            match self.wh.table_columns(&schema, &target)? {
                None => {
                    self.wh.execute(
                        &sql::create_table(dialect, &schema, &target, &layout.tables[i].columns),
                        &[],
                    )?;
                }
                Some(existing) => {
                    let changes = layout
                        .reconcile(i, &existing, self.config.on_schema_change)
                        .map_err(|source| LoadError::Incompatible { line, source })?;
                    for change in changes {
                        let statements = match &change {
                            TableChange::AddColumn { column } => {
                                vec![sql::add_column(dialect, &schema, &target, column)]
                            }
                            TableChange::WidenColumn { column, from, to } => {
                                sql::widen_column(dialect, &schema, &target, column, *from, *to)
                            }
                        };
                        tracing::info!(table = %target, change = ?change, "schema change");
                        for statement in statements {
                            self.wh.execute(&statement, &[])?;
                        }
                    }
                }
            }
        }
        if replace {
            stream.aside_ready = true;
        }
        metadata::record_schema_version(
            self.wh,
            &schema,
            &layout,
            // The schema the tables follow (with `untyped = "infer"`, not the one sent).
            &schema_hash(&stream.raw_schema, &layout.key_properties),
            &stream.raw_schema,
            self.ids.load_id(),
        )?;
        Ok(layout)
    }
}

pub(super) fn schema_hash(schema: &Value, key_properties: &[String]) -> String {
    observes_model::ident::short_hash(&schema.to_string())
        + &observes_model::ident::short_hash(&format!("{key_properties:?}"))
}
