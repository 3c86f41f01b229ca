//! From a stream's JSON Schema to its tables: the root table, one child table per array,
//! nested objects flattened into `parent__child` columns.

use serde_json::{Map, Value};

use crate::ident::{normalize, NameRegistry};
use crate::types::ColumnType;

/// Every row's load (`_observes_loads`).
pub const LOAD_ID: &str = "_observes_load_id";
/// A row's id, unique in the warehouse.
pub const ID: &str = "_observes_id";
/// A child row's parent row.
pub const PARENT_ID: &str = "_observes_parent_id";
/// A child row's root (record) row.
pub const ROOT_ID: &str = "_observes_root_id";
/// A child row's place in its array, from 0.
pub const LIST_IDX: &str = "_observes_list_idx";
/// The column of an array of scalars' child table.
pub const VALUE: &str = "value";
/// Room kept below the dialect's identifier limit so `__observes_new`-style suffixes fit.
pub const TABLE_NAME_RESERVE: usize = 24;

/// A column of a table. Metadata columns (`_observes_*`) are never null.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name in the warehouse.
    pub name: String,
    /// Its type.
    pub ty: ColumnType,
    /// Whether it is one of Observes' own `_observes_*` columns.
    pub metadata: bool,
}

/// A table of a stream's layout: the root table or a child table for an array.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The table's name in the warehouse.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// Index of the parent table in [`Layout::tables`]; `None` for the root table.
    pub parent: Option<usize>,
}

impl Table {
    /// The position of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// The JSON types a property's schema allows, as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accepts(pub u8);

impl Accepts {
    /// `boolean`.
    pub const BOOL: u8 = 1;
    /// `integer`.
    pub const INT: u8 = 2;
    /// `number`.
    pub const NUM: u8 = 4;
    /// `string`.
    pub const STR: u8 = 8;
    /// `object`.
    pub const OBJ: u8 = 16;
    /// `array`.
    pub const ARR: u8 = 32;
    /// Any JSON type.
    pub const ANY: Accepts = Accepts(63);

    /// Whether `flag` is accepted.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// "integer or string", for error messages.
    pub fn describe(self) -> String {
        let names = [
            (Self::BOOL, "boolean"),
            (Self::INT, "integer"),
            (Self::NUM, "number"),
            (Self::STR, "string"),
            (Self::OBJ, "object"),
            (Self::ARR, "array"),
        ];
        let mut parts: Vec<&str> = names
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect();
        if self.has(Self::INT) && self.has(Self::NUM) {
            parts.retain(|p| *p != "integer");
        }
        parts.push("null");
        parts.join(" or ")
    }
}

/// How a property's value is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// One column of the current table.
    /// One column of the current table.
    Scalar {
        /// Its position in the table.
        column: usize,
        /// The JSON types it takes.
        accepts: Accepts,
    },
    /// A nested object, flattened into the current table.
    /// A nested object, flattened into the current table.
    Object {
        /// Its properties, in order.
        properties: Vec<(String, Field)>,
    },
    /// An array: one row per element in a child table.
    /// An array: one row per element in a child table.
    Array {
        /// The child table's index.
        table: usize,
        /// How an element is stored.
        item: Box<Field>,
    },
    /// Any JSON (objects without properties, mixed types), kept as JSON text.
    /// Any JSON (objects without properties, mixed types), kept as JSON text.
    Json {
        /// Its position in the table.
        column: usize,
    },
}

/// Positions of the metadata columns of one table.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetaColumns {
    /// `_observes_load_id`.
    pub load_id: usize,
    /// `_observes_id`.
    pub id: usize,
    /// `_observes_parent_id` (child tables).
    pub parent_id: Option<usize>,
    /// `_observes_root_id` (child tables).
    pub root_id: Option<usize>,
    /// `_observes_list_idx` (child tables).
    pub list_idx: Option<usize>,
}

/// What a SCHEMA message becomes: the tables of a stream and how records fill them.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The stream.
    pub stream: String,
    /// `tables[0]` is the root table; children follow their parents.
    pub tables: Vec<Table>,
    /// The stream's key properties.
    pub key_properties: Vec<String>,
    /// Root-table columns of the key properties, in key order.
    pub key_columns: Vec<usize>,
    pub(crate) properties: Vec<(String, Field)>,
    pub(crate) meta: Vec<MetaColumns>,
    /// Longest text value the warehouse stores, in bytes; a longer one is an invalid record.
    pub max_text_bytes: Option<usize>,
    max_identifier: usize,
}

/// A schema that cannot be turned into tables.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("stream {stream:?}: invalid schema at {at}: {problem}")]
pub struct SchemaError {
    /// The stream.
    pub stream: String,
    /// Where in the schema, as a JSON pointer-like path (`properties.user.type`).
    pub at: String,
    /// What is wrong.
    pub problem: String,
}

/// What to do when a column's type changes in a way no column type absorbs (say bigint to
/// boolean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaChangePolicy {
    /// Stop the load with an error naming the column.
    #[default]
    Fail,
    /// Keep the column and its data; values of the new type go to a new column
    /// `<name>__v_<type>` (a "variant" column, as dlt calls it). Key columns never vary.
    Variant,
}

impl std::str::FromStr for SchemaChangePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(SchemaChangePolicy::Fail),
            "variant" => Ok(SchemaChangePolicy::Variant),
            other => Err(format!(
                "unknown schema-change policy {other:?} (expected fail or variant)"
            )),
        }
    }
}

/// A change the warehouse must make so a table can hold a new layout.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    /// A column to add.
    AddColumn {
        /// The column.
        column: Column,
    },
    /// A column to widen (an integer column that takes decimals).
    WidenColumn {
        /// The column.
        column: String,
        /// Its type now.
        from: ColumnType,
        /// The type it becomes.
        to: ColumnType,
    },
}

/// A type change no column type can absorb (e.g. boolean to timestamp).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error(
    "stream {stream:?}: column {column:?} of table {table:?} cannot change from {from} to {to} ({why})"
)]
pub struct IncompatibleChange {
    /// The stream.
    pub stream: String,
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// Its type now.
    pub from: ColumnType,
    /// The type the records now have.
    pub to: ColumnType,
    /// Why it stops the load: the policy, or a key column.
    pub why: &'static str,
}

enum Shape<'a> {
    Scalar { ty: ColumnType, accepts: Accepts },
    Object(&'a Map<String, Value>),
    Array(Option<&'a Value>),
    Json,
}

struct Compiler<'s> {
    stream: &'s str,
    max_ident: usize,
    tables: Vec<Table>,
    registries: Vec<NameRegistry>,
    table_names: NameRegistry,
}

impl Layout {
    /// Compiles a stream's JSON Schema. `max_ident` is the dialect's identifier limit in
    /// bytes.
    ///
    /// ```
    /// use observes_model::Layout;
    /// use serde_json::json;
    /// let schema = json!({"type": "object", "properties": {
    ///     "id": {"type": "integer"},
    ///     "user": {"type": ["null", "object"], "properties": {"userName": {"type": "string"}}},
    ///     "tags": {"type": "array", "items": {"type": "string"}}
    /// }});
    /// let layout = Layout::compile("Jobs", &schema, &["id".into()], 63).unwrap();
    /// let names: Vec<_> = layout.tables.iter().map(|t| t.name.as_str()).collect();
    /// assert_eq!(names, ["jobs", "jobs__tags"]);
    /// assert_eq!(layout.tables[0].columns[1].name, "user__user_name");
    /// ```
    pub fn compile(
        stream: &str,
        schema: &Value,
        key_properties: &[String],
        max_ident: usize,
    ) -> Result<Layout, SchemaError> {
        let root = Layout::root_table_name(stream, max_ident);
        Layout::compile_as(stream, &root, schema, key_properties, max_ident)
    }

    /// The root table a stream gets by default: its name, normalized.
    pub fn root_table_name(stream: &str, max_ident: usize) -> String {
        normalize(stream, table_limit(max_ident))
    }

    /// The root table for a stream whose default one is taken by another stream: the
    /// normalized name with a hash of the stream's own name, stable across runs.
    pub fn distinct_root_table_name(stream: &str, max_ident: usize) -> String {
        let suffix = format!("_{}", crate::ident::short_hash(stream));
        let base = normalize(stream, table_limit(max_ident).saturating_sub(suffix.len()));
        base + &suffix
    }

    /// [`Layout::compile`] into a root table of the given name (child tables are named
    /// after it).
    pub fn compile_as(
        stream: &str,
        root_table: &str,
        schema: &Value,
        key_properties: &[String],
        max_ident: usize,
    ) -> Result<Layout, SchemaError> {
        let mut c = Compiler {
            stream,
            max_ident,
            tables: Vec::new(),
            registries: Vec::new(),
            table_names: NameRegistry::default(),
        };
        let root_name = c.table_name(stream, root_table.to_string());
        let root = c.new_table(root_name, None);
        let props = match c.shape(schema, "schema")? {
            Shape::Object(props) => props,
            _ => {
                return Err(c.error(
                    "schema",
                    "the stream's schema must be an object with \"properties\"",
                ))
            }
        };
        let properties = c.object(props, root, "", "", "properties")?;
        let mut key_columns = Vec::new();
        for key in key_properties {
            match properties.iter().find(|(name, _)| name == key) {
                Some((_, Field::Scalar { column, .. })) => key_columns.push(*column),
                Some(_) => {
                    return Err(c.error(
                        &format!("properties.{key}"),
                        &format!("key property {key:?} must be a scalar"),
                    ))
                }
                None => {
                    return Err(c.error(
                        "key_properties",
                        &format!("key property {key:?} is not in the schema"),
                    ))
                }
            }
        }
        let mut layout = Layout {
            stream: stream.to_string(),
            tables: c.tables,
            key_properties: key_properties.to_vec(),
            key_columns,
            properties,
            meta: Vec::new(),
            max_text_bytes: None,
            max_identifier: max_ident,
        };
        layout.finish_tables();
        Ok(layout)
    }

    /// Appends the metadata columns and records where they are.
    fn finish_tables(&mut self) {
        for table in &mut self.tables {
            let mut meta = vec![LOAD_ID, ID];
            if table.parent.is_some() {
                meta.extend([PARENT_ID, ROOT_ID, LIST_IDX]);
            }
            for name in meta {
                table.columns.push(Column {
                    name: name.to_string(),
                    ty: ColumnType::BigInt,
                    metadata: true,
                });
            }
        }
        self.locate_metadata();
    }

    fn locate_metadata(&mut self) {
        self.meta = self
            .tables
            .iter()
            .map(|t| MetaColumns {
                load_id: t.column_index(LOAD_ID).unwrap_or(usize::MAX),
                id: t.column_index(ID).unwrap_or(usize::MAX),
                parent_id: t.column_index(PARENT_ID),
                root_id: t.column_index(ROOT_ID),
                list_idx: t.column_index(LIST_IDX),
            })
            .collect();
    }

    /// The root table's properties and how each is stored (for tools and tests that read
    /// the tables back).
    pub fn properties(&self) -> &[(String, Field)] {
        &self.properties
    }

    /// The root table.
    pub fn root(&self) -> &Table {
        &self.tables[0]
    }

    /// Key column names of the root table.
    pub fn key_column_names(&self) -> Vec<String> {
        self.key_columns
            .iter()
            .map(|&i| self.tables[0].columns[i].name.clone())
            .collect()
    }

    /// Fits table `index` to the columns it already has in the warehouse (in their order):
    /// existing columns keep their place and, where wider, their type; new columns are
    /// appended; columns the schema no longer has stay (and get nulls). Returns the changes
    /// the warehouse must make.
    /// A type change no column type absorbs follows `policy`.
    pub fn reconcile(
        &mut self,
        index: usize,
        existing: &[(String, ColumnType)],
        policy: SchemaChangePolicy,
    ) -> Result<Vec<TableChange>, IncompatibleChange> {
        for (name, existing_ty) in existing {
            let Some(i) = self.tables[index].column_index(name) else {
                continue;
            };
            let wanted = self.tables[index].columns[i].ty;
            if existing_ty.widen(wanted).is_some() {
                continue;
            }
            let is_key = index == 0 && self.key_columns.contains(&i);
            if policy == SchemaChangePolicy::Fail || is_key {
                return Err(IncompatibleChange {
                    stream: self.stream.clone(),
                    table: self.tables[index].name.clone(),
                    column: name.clone(),
                    from: *existing_ty,
                    to: wanted,
                    why: if policy == SchemaChangePolicy::Fail {
                        "the schema-change policy is \"fail\""
                    } else {
                        "a key column keeps its type"
                    },
                });
            }
            // The existing column stays as it is; the new values get their own column.
            let variant = format!("{name}__v_{}", wanted.name());
            self.tables[index].columns[i].name =
                crate::ident::shorten(variant.clone(), &variant, self.max_identifier);
        }
        let table = &self.tables[index];
        let mut columns: Vec<Column> = Vec::with_capacity(existing.len() + table.columns.len());
        let mut changes = Vec::new();
        let mut moved = vec![usize::MAX; table.columns.len()];
        for (name, existing_ty) in existing {
            match table.column_index(name) {
                Some(i) => {
                    let wanted = table.columns[i].ty;
                    let ty = existing_ty
                        .widen(wanted)
                        .ok_or_else(|| IncompatibleChange {
                            stream: self.stream.clone(),
                            table: table.name.clone(),
                            column: name.clone(),
                            from: *existing_ty,
                            to: wanted,
                            why: "the schema-change policy is \"fail\"",
                        })?;
                    if ty != *existing_ty {
                        changes.push(TableChange::WidenColumn {
                            column: name.clone(),
                            from: *existing_ty,
                            to: ty,
                        });
                    }
                    moved[i] = columns.len();
                    columns.push(Column {
                        ty,
                        ..table.columns[i].clone()
                    });
                }
                None => columns.push(Column {
                    name: name.clone(),
                    ty: *existing_ty,
                    metadata: false,
                }),
            }
        }
        for (i, column) in table.columns.iter().enumerate() {
            if moved[i] == usize::MAX {
                moved[i] = columns.len();
                columns.push(column.clone());
                changes.push(TableChange::AddColumn {
                    column: column.clone(),
                });
            }
        }
        self.tables[index].columns = columns;
        remap(&mut self.properties, index, &moved, 0);
        if index == 0 {
            for k in &mut self.key_columns {
                *k = moved[*k];
            }
        }
        self.locate_metadata();
        Ok(changes)
    }
}

/// Renumbers the columns of table `target` in the plan after a reorder.
fn remap(properties: &mut [(String, Field)], target: usize, moved: &[usize], table: usize) {
    for (_, field) in properties {
        remap_field(field, target, moved, table);
    }
}

fn remap_field(field: &mut Field, target: usize, moved: &[usize], table: usize) {
    match field {
        Field::Scalar { column, .. } | Field::Json { column } => {
            if table == target {
                *column = moved[*column];
            }
        }
        Field::Object { properties } => remap(properties, target, moved, table),
        Field::Array { table: child, item } => remap_field(item, target, moved, *child),
    }
}

/// A property name as one segment of a dotted path (`user.name`): a name with a dot of its
/// own (`"a.b"`) is escaped (`a\.b`), so that it never names the same place as a nested
/// property (`a: {b}`), whose columns would then be one.
fn path_segment(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['.', '\\']) {
        key.replace('\\', "\\\\").replace('.', "\\.").into()
    } else {
        key.into()
    }
}

/// The longest table name, leaving room for suffixes such as `__observes_stage`.
fn table_limit(max_ident: usize) -> usize {
    max_ident.saturating_sub(TABLE_NAME_RESERVE).max(16)
}

impl<'s> Compiler<'s> {
    fn table_limit(&self) -> usize {
        table_limit(self.max_ident)
    }

    fn error(&self, at: &str, problem: &str) -> SchemaError {
        SchemaError {
            stream: self.stream.to_string(),
            at: at.to_string(),
            problem: problem.to_string(),
        }
    }

    fn table_name(&mut self, original: &str, normalized: String) -> String {
        let limit = self.table_limit();
        self.table_names.claim(original, normalized, limit)
    }

    fn new_table(&mut self, name: String, parent: Option<usize>) -> usize {
        let mut registry = NameRegistry::default();
        for meta in [LOAD_ID, ID, PARENT_ID, ROOT_ID, LIST_IDX] {
            registry.reserve(meta);
        }
        self.tables.push(Table {
            name,
            columns: Vec::new(),
            parent,
        });
        self.registries.push(registry);
        self.tables.len() - 1
    }

    fn add_column(
        &mut self,
        table: usize,
        original: &str,
        normalized: String,
        ty: ColumnType,
    ) -> usize {
        let name = self.registries[table].claim(original, normalized, self.max_ident);
        let t = &mut self.tables[table];
        t.columns.push(Column {
            name,
            ty,
            metadata: false,
        });
        t.columns.len() - 1
    }

    /// The fields of an object's properties, flattened into `table` under `prefix`.
    fn object(
        &mut self,
        props: &Map<String, Value>,
        table: usize,
        original_prefix: &str,
        name_prefix: &str,
        at: &str,
    ) -> Result<Vec<(String, Field)>, SchemaError> {
        let mut fields = Vec::with_capacity(props.len());
        for (key, sub) in props {
            let original = format!("{original_prefix}{}", path_segment(key));
            let name = format!("{name_prefix}{}", normalize(key, usize::MAX));
            let field = self.field(sub, table, &original, name, &format!("{at}.{key}"))?;
            fields.push((key.clone(), field));
        }
        Ok(fields)
    }

    fn field(
        &mut self,
        schema: &Value,
        table: usize,
        original: &str,
        name: String,
        at: &str,
    ) -> Result<Field, SchemaError> {
        Ok(match self.shape(schema, at)? {
            Shape::Scalar { ty, accepts } => Field::Scalar {
                column: self.add_column(table, original, name, ty),
                accepts,
            },
            Shape::Json => Field::Json {
                column: self.add_column(table, original, name, ColumnType::Json),
            },
            Shape::Object(props) => Field::Object {
                properties: self.object(
                    props,
                    table,
                    &format!("{original}."),
                    &format!("{name}__"),
                    &format!("{at}.properties"),
                )?,
            },
            Shape::Array(items) => {
                let parent_name = self.tables[table].name.clone();
                let limit = self.table_limit();
                let child_original = format!("{parent_name}.{original}");
                let child_name =
                    crate::ident::shorten(format!("{parent_name}__{name}"), &child_original, limit);
                let child_name = self.table_name(&child_original, child_name);
                let child = self.new_table(child_name, Some(table));
                let item_at = format!("{at}.items");
                let item = match items {
                    None => Field::Json {
                        column: self.add_column(child, VALUE, VALUE.into(), ColumnType::Json),
                    },
                    Some(items) => match self.shape(items, &item_at)? {
                        Shape::Object(props) => Field::Object {
                            properties: self.object(
                                props,
                                child,
                                "",
                                "",
                                &format!("{item_at}.properties"),
                            )?,
                        },
                        _ => self.field(items, child, VALUE, VALUE.into(), &item_at)?,
                    },
                };
                Field::Array {
                    table: child,
                    item: Box::new(item),
                }
            }
        })
    }

    fn shape<'a>(&self, schema: &'a Value, at: &str) -> Result<Shape<'a>, SchemaError> {
        let obj = match schema {
            Value::Bool(true) => return Ok(Shape::Json),
            Value::Object(obj) => obj,
            _ => return Err(self.error(at, "a schema must be an object")),
        };
        if let Some(alternatives) = obj.get("anyOf").or_else(|| obj.get("oneOf")) {
            if obj.get("type").is_none() {
                return self.alternatives(alternatives, at);
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            None => {
                return Ok(match (obj.get("properties"), obj.get("items")) {
                    (Some(Value::Object(props)), _) => Shape::Object(props),
                    (Some(_), _) => {
                        return Err(self.error(&format!("{at}.properties"), "must be an object"))
                    }
                    (None, Some(items)) => Shape::Array(Some(items)),
                    (None, None) => Shape::Json,
                })
            }
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|t| {
                    t.as_str().ok_or_else(|| {
                        self.error(
                            &format!("{at}.type"),
                            "must be a string or a list of strings",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(self.error(
                    &format!("{at}.type"),
                    "must be a string or a non-empty list of strings",
                ))
            }
        };
        let mut accepts = 0u8;
        for t in &types {
            accepts |= match *t {
                "null" => 0,
                "boolean" => Accepts::BOOL,
                "integer" => Accepts::INT,
                "number" => Accepts::NUM | Accepts::INT,
                "string" => Accepts::STR,
                "object" => Accepts::OBJ,
                "array" => Accepts::ARR,
                other => {
                    return Err(
                        self.error(&format!("{at}.type"), &format!("unknown type {other:?}"))
                    )
                }
            };
        }
        let accepts = Accepts(accepts);
        if accepts.0 == 0 {
            // Only "null": a column that is always empty; text is the least surprising.
            return Ok(Shape::Scalar {
                ty: ColumnType::Text,
                accepts: Accepts(Accepts::STR),
            });
        }
        if accepts.0 == Accepts::OBJ {
            return match obj.get("properties") {
                Some(Value::Object(props)) if !props.is_empty() => Ok(Shape::Object(props)),
                Some(Value::Object(_)) | None => Ok(Shape::Json),
                Some(_) => Err(self.error(&format!("{at}.properties"), "must be an object")),
            };
        }
        if accepts.0 == Accepts::ARR {
            return match obj.get("items") {
                None => Ok(Shape::Array(None)),
                Some(items @ (Value::Object(_) | Value::Bool(true))) => {
                    Ok(Shape::Array(Some(items)))
                }
                // Tuple-typed arrays have no single item shape: keep them as JSON.
                Some(Value::Array(_)) => Ok(Shape::Json),
                Some(_) => Err(self.error(&format!("{at}.items"), "must be a schema")),
            };
        }
        if accepts.has(Accepts::OBJ) || accepts.has(Accepts::ARR) {
            return Ok(Shape::Json);
        }
        let format = obj.get("format").and_then(Value::as_str);
        let ty = scalar_type(accepts, format);
        Ok(Shape::Scalar { ty, accepts })
    }

    fn alternatives<'a>(
        &self,
        alternatives: &'a Value,
        at: &str,
    ) -> Result<Shape<'a>, SchemaError> {
        let list = alternatives
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                self.error(
                    &format!("{at}.anyOf"),
                    "must be a non-empty list of schemas",
                )
            })?;
        let mut scalars: Option<(ColumnType, Accepts)> = None;
        let mut complex = Vec::new();
        for (i, alt) in list.iter().enumerate() {
            let alt_at = format!("{at}.anyOf[{i}]");
            if alt.get("type").and_then(Value::as_str) == Some("null") {
                continue;
            }
            match self.shape(alt, &alt_at)? {
                Shape::Scalar { ty, accepts } => {
                    scalars = Some(match scalars {
                        None => (ty, accepts),
                        Some((t, a)) => {
                            let joined = Accepts(a.0 | accepts.0);
                            (t.widen(ty).unwrap_or(ColumnType::Text), joined)
                        }
                    })
                }
                other => complex.push(other),
            }
        }
        match (scalars, complex.len()) {
            (Some((ty, accepts)), 0) => {
                // Mixed kinds (say boolean and integer) are kept as text, never coerced.
                let ty = if ty == ColumnType::Text {
                    scalar_type(accepts, None)
                } else {
                    ty
                };
                Ok(Shape::Scalar { ty, accepts })
            }
            (None, 1) => Ok(complex.pop().unwrap_or(Shape::Json)),
            (None, 0) => Ok(Shape::Scalar {
                ty: ColumnType::Text,
                accepts: Accepts(Accepts::STR),
            }),
            _ => Ok(Shape::Json),
        }
    }
}

/// The column type for a scalar that may be any of `accepts`.
fn scalar_type(accepts: Accepts, format: Option<&str>) -> ColumnType {
    let a = accepts.0;
    if a == Accepts::STR {
        return match format {
            Some("date-time") => ColumnType::Timestamp,
            Some("date") => ColumnType::Date,
            Some("time") => ColumnType::Time,
            _ => ColumnType::Text,
        };
    }
    if a == Accepts::BOOL {
        return ColumnType::Boolean;
    }
    if a == Accepts::INT {
        return ColumnType::BigInt;
    }
    if a == Accepts::INT | Accepts::NUM {
        return ColumnType::Double;
    }
    ColumnType::Text
}
