//! Properties of the relational model over arbitrary schemas and records (proptest):
//! naming is injective, and normalizing loses nothing.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::Array;
use observes_model::layout::Field;
use observes_model::{IdAllocator, Layout, Normalizer};
use observes_singer::Record;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// The shape of a property: what its schema declares and its values are.
#[derive(Debug, Clone)]
enum Shape {
    Int,
    Text,
    Bool,
    Object(Vec<(String, Shape)>),
    Array(Box<Shape>),
}

/// Property names that normalize alike on purpose: case, dots, underscores, digits,
/// non-ASCII, the metadata prefix.
/// A small alphabet, so that names meet: `a.b` beside `a: {b}`, `a__b` beside both.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[ab]",
        3 => "[ab](__|\\.|_)[ab]",
        1 => "[A-Ba-b_.]{1,4}",
        1 => "_observes_(id|load_id|[a-z]{0,2})",
        1 => "[0-9][ab]?",
        1 => "é|名前|a b|A-B|a\\\\.b",
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = prop_oneof![Just(Shape::Int), Just(Shape::Text), Just(Shape::Bool)];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec((name(), inner.clone()), 1..5)
                .prop_map(|props| { Shape::Object(dedup(props)) }),
            inner.prop_map(|item| Shape::Array(Box::new(item))),
        ]
    })
}

/// JSON objects keep one property per key.
fn dedup(props: Vec<(String, Shape)>) -> Vec<(String, Shape)> {
    let mut seen = HashSet::new();
    props
        .into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

fn schema_of(shape: &Shape) -> Value {
    match shape {
        Shape::Int => json!({"type": ["null", "integer"]}),
        Shape::Text => json!({"type": ["null", "string"]}),
        Shape::Bool => json!({"type": ["null", "boolean"]}),
        Shape::Object(props) => json!({"type": ["null", "object"], "properties":
            props.iter().map(|(k, s)| (k.clone(), schema_of(s))).collect::<Map<_, _>>()}),
        Shape::Array(item) => json!({"type": ["null", "array"], "items": schema_of(item)}),
    }
}

/// A value of `shape` (nulls included).
fn value_of(shape: &Shape) -> BoxedStrategy<Value> {
    let value = match shape {
        Shape::Int => any::<i64>().prop_map(Value::from).boxed(),
        Shape::Text => "[a-z\"\\\\\n é]{0,6}".prop_map(Value::from).boxed(),
        Shape::Bool => any::<bool>().prop_map(Value::from).boxed(),
        Shape::Object(props) => {
            let fields: Vec<BoxedStrategy<(String, Value)>> = props
                .iter()
                .map(|(k, s)| {
                    let k = k.clone();
                    value_of(s).prop_map(move |v| (k.clone(), v)).boxed()
                })
                .collect();
            fields
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
                .boxed()
        }
        Shape::Array(item) => prop::collection::vec(value_of(item), 0..4)
            .prop_map(Value::Array)
            .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 6 => value].boxed()
}

/// Leaves that must land in a cell: non-null scalars (an object or array of them counts
/// through its parts).
fn leaves(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Object(map) => map.values().map(leaves).sum(),
        Value::Array(items) => items.iter().map(leaves).sum(),
        _ => 1,
    }
}

/// Array elements (each one a child row).
fn elements(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.values().map(elements).sum(),
        Value::Array(items) => items.len() + items.iter().map(elements).sum::<usize>(),
        _ => 0,
    }
}

fn root_and_records() -> impl Strategy<Value = (Vec<(String, Shape)>, Vec<Value>)> {
    // Often a dotted name beside the nested object it spells (`a.b` and `a: {b}`).
    let meeting = prop_oneof![
        Just(vec![]),
        Just(vec![
            ("a.b".to_string(), Shape::Text),
            (
                "a".to_string(),
                Shape::Object(vec![("b".into(), Shape::Int)])
            ),
        ]),
    ];
    (prop::collection::vec((name(), shape()), 1..6), meeting)
        .prop_map(|(mut props, meeting)| {
            props.extend(meeting);
            dedup(props)
        })
        .prop_flat_map(|props| {
            let root = Shape::Object(props.clone());
            let record = value_of(&root).prop_map(|v| match v {
                Value::Null => json!({}),
                other => other,
            });
            (Just(props), prop::collection::vec(record, 1..5))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every table name is distinct, and so is every column name within a table, however
    /// the property names normalize.
    #[test]
    fn naming_is_injective((props, _) in root_and_records(), max_ident in prop_oneof![Just(63usize), Just(127), Just(255)]) {
        let schema = schema_of(&Shape::Object(props));
        let layout = Layout::compile("Stream.Name", &schema, &[], max_ident).unwrap();
        let mut tables = HashSet::new();
        for table in &layout.tables {
            prop_assert!(tables.insert(table.name.clone()), "table {} twice", table.name);
            prop_assert!(table.name.len() <= max_ident, "{} too long", table.name);
            let mut columns = HashSet::new();
            for column in &table.columns {
                prop_assert!(columns.insert(column.name.clone()), "column {} twice in {}", column.name, table.name);
                prop_assert!(column.name.len() <= max_ident, "{} too long", column.name);
            }
        }
    }

    /// Each non-null scalar of a record lands in exactly one cell, and each array element
    /// in one child row: nothing is dropped or written twice.
    #[test]
    fn normalizing_loses_nothing((props, records) in root_and_records()) {
        let schema = schema_of(&Shape::Object(props));
        let layout = Arc::new(Layout::compile("s", &schema, &[], 255).unwrap());
        let mut normalizer = Normalizer::new(layout.clone());
        let mut ids = IdAllocator::new(1);
        for record in &records {
            let Value::Object(map) = record else { unreachable!("records are objects") };
            // Both ways in: as read (the fast path) and as built in-process (serde).
            normalizer.push(&Record::Raw(observes_singer::RawRecord::parse(&record.to_string()).unwrap()), &mut ids).unwrap();
            normalizer.push(&Record::Parsed(map.clone()), &mut ids).unwrap();
        }
        let mut cells = 0;
        let mut child_rows = 0;
        for (table, batch) in normalizer.take_batches() {
            let columns = &layout.tables[table].columns;
            if table > 0 {
                child_rows += batch.num_rows();
            }
            for (i, column) in columns.iter().enumerate() {
                if !column.metadata {
                    let array = batch.column(i);
                    cells += array.len() - array.null_count();
                }
            }
        }
        let expected_cells: usize = records.iter().map(leaves).sum::<usize>() * 2;
        let expected_rows: usize = records.iter().map(elements).sum::<usize>() * 2;
        prop_assert_eq!(cells, expected_cells);
        prop_assert_eq!(child_rows, expected_rows);
    }

    /// Each record can be rebuilt from its tables: the same values at the same places
    /// (what the tables cannot tell apart, null, `{}` and `[]`, aside).
    #[test]
    fn records_can_be_rebuilt_from_their_tables((props, records) in root_and_records()) {
        let schema = schema_of(&Shape::Object(props));
        let layout = Arc::new(Layout::compile("s", &schema, &[], 255).unwrap());
        let mut normalizer = Normalizer::new(layout.clone());
        let mut ids = IdAllocator::new(1);
        for record in &records {
            let raw = observes_singer::RawRecord::parse(&record.to_string()).unwrap();
            normalizer.push(&Record::Raw(raw), &mut ids).unwrap();
        }
        let tables = Tables::read(&layout, normalizer.take_batches());
        for (row, record) in records.iter().enumerate() {
            let rebuilt = tables.object(layout.properties(), 0, row);
            prop_assert_eq!(Value::Object(rebuilt), prune(record), "{}", record);
        }
    }
}

/// A wide object (past the size where keys are looked up by a hash index) read in reverse
/// schema order, with an unknown key among them, fills each value's own column.
#[test]
fn wide_objects_in_any_order_fill_their_own_columns() {
    let names: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
    let schema = json!({"type": "object", "properties": names.iter()
        .map(|n| (n.clone(), json!({"type": "integer"}))).collect::<Map<_, _>>()});
    let layout = Arc::new(Layout::compile("w", &schema, &[], 255).unwrap());
    let mut normalizer = Normalizer::new(layout.clone());
    let mut ids = IdAllocator::new(1);
    let mut record = Map::new();
    for (i, n) in names.iter().enumerate().rev() {
        record.insert(n.clone(), json!(i));
        if i == 50 {
            record.insert("unknown".into(), json!("skipped"));
        }
    }
    normalizer
        .push(&Record::Parsed(record.clone()), &mut ids)
        .unwrap();
    let raw = observes_singer::RawRecord::parse(&Value::Object(record).to_string()).unwrap();
    normalizer.push(&Record::Raw(raw), &mut ids).unwrap();
    let batches = normalizer.take_batches();
    let (_, batch) = &batches[0];
    for (i, column) in layout.tables[0].columns.iter().enumerate() {
        if column.metadata {
            continue;
        }
        let values = batch
            .column(i)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let expected: i64 = column.name[1..].parse().unwrap();
        assert_eq!(
            values.values().to_vec(),
            vec![expected, expected],
            "{}",
            column.name
        );
    }
}

/// The tables of one normalizer's output, as JSON cells, to read records back.
struct Tables {
    /// Per table: rows of cells.
    rows: Vec<Vec<Vec<Value>>>,
    /// Per table: the `_observes_id`, `_observes_parent_id`, `_observes_list_idx` columns.
    meta: Vec<(usize, Option<usize>, Option<usize>)>,
}

impl Tables {
    fn read(layout: &Layout, batches: Vec<(usize, arrow_array::RecordBatch)>) -> Tables {
        use arrow_array::{BooleanArray, Int64Array, StringArray};
        let mut rows: Vec<Vec<Vec<Value>>> = vec![Vec::new(); layout.tables.len()];
        for (table, batch) in batches {
            let columns = &layout.tables[table].columns;
            for r in 0..batch.num_rows() {
                let cells = (0..columns.len())
                    .map(|c| {
                        let array = batch.column(c);
                        if array.is_null(r) {
                            return Value::Null;
                        }
                        let any = array.as_any();
                        if let Some(a) = any.downcast_ref::<Int64Array>() {
                            json!(a.value(r))
                        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                            json!(a.value(r))
                        } else if let Some(a) = any.downcast_ref::<StringArray>() {
                            match columns[c].ty {
                                observes_model::ColumnType::Json => {
                                    serde_json::from_str(a.value(r)).unwrap()
                                }
                                _ => json!(a.value(r)),
                            }
                        } else {
                            panic!("column {} of an unexpected type", columns[c].name)
                        }
                    })
                    .collect();
                rows[table].push(cells);
            }
        }
        let meta = layout
            .tables
            .iter()
            .map(|t| {
                (
                    t.column_index("_observes_id").unwrap(),
                    t.column_index("_observes_parent_id"),
                    t.column_index("_observes_list_idx"),
                )
            })
            .collect();
        Tables { rows, meta }
    }

    fn object(
        &self,
        properties: &[(String, Field)],
        table: usize,
        row: usize,
    ) -> Map<String, Value> {
        properties
            .iter()
            .filter_map(|(key, field)| {
                let value = self.value(field, table, row);
                (!is_empty(&value)).then(|| (key.clone(), value))
            })
            .collect()
    }

    /// What `field` holds for row `row` of `table`.
    fn value(&self, field: &Field, table: usize, row: usize) -> Value {
        match field {
            Field::Scalar { column, .. } | Field::Json { column } => {
                self.rows[table][row][*column].clone()
            }
            Field::Object { properties } => Value::Object(self.object(properties, table, row)),
            Field::Array { table: child, item } => {
                let id = &self.rows[table][row][self.meta[table].0];
                let (_, parent, index) = self.meta[*child];
                let mut children: Vec<(i64, usize)> = self.rows[*child]
                    .iter()
                    .enumerate()
                    .filter(|(_, cells)| &cells[parent.unwrap()] == id)
                    .map(|(r, cells)| (cells[index.unwrap()].as_i64().unwrap(), r))
                    .collect();
                children.sort();
                Value::Array(
                    children
                        .into_iter()
                        .map(|(_, r)| match self.value(item, *child, r) {
                            // An element stays (it is a row); null, {} and [] read the same.
                            v if is_empty(&v) => Value::Null,
                            other => other,
                        })
                        .collect(),
                )
            }
        }
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A record as its tables can show it: nulls, empty objects and empty arrays left out of
/// objects; an array's empty object or empty array element reads as null.
fn prune(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), prune(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match prune(item) {
                    v if is_empty(&v) => Value::Null,
                    other => other,
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
