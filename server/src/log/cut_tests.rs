//! Cuts decode to exactly the rows they claim, for every type a cut slices.

use super::*;
use crate::log::ipc::{decode, BatchEncoder, Compression};
use crate::log::read::metadata_fields;
use arrow_array::builder::{BooleanBuilder, Int32Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Decimal128Array, FixedSizeBinaryArray, Int64Array, LargeStringArray, NullArray, RecordBatch, StructArray,
    TimestampMillisecondArray,
};
use arrow_schema::{Field, Fields, Schema};
use std::sync::Arc;

/// A batch of `rows` rows with every cuttable type, nulls in a pattern that does not repeat
/// every 8 rows, and all-valid and all-null columns.
fn sample(rows: usize) -> RecordBatch {
    let mut ints = Int32Builder::new();
    let mut flags = BooleanBuilder::new();
    let mut words = StringBuilder::new();
    for i in 0..rows {
        if i % 7 == 3 {
            ints.append_null()
        } else {
            ints.append_value(i as i32 * 3)
        }
        if i % 5 == 1 {
            flags.append_null()
        } else {
            flags.append_value(i % 3 == 0)
        }
        if i % 11 == 4 {
            words.append_null()
        } else {
            words.append_value("w".repeat(i % 13))
        }
    }
    let ints: ArrayRef = Arc::new(ints.finish());
    let struct_fields = Fields::from(vec![Field::new("a", DataType::Int32, true), Field::new("s", DataType::Utf8, true)]);
    let strukt = StructArray::new(
        struct_fields.clone(),
        vec![ints.clone(), Arc::new(arrow_array::StringArray::from_iter((0..rows).map(|i| (i % 4 != 0).then(|| format!("s{i}")))))],
        Some((0..rows).map(|i| i % 9 != 2).collect()),
    );
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| i * 1_000_003))),
        ints,
        Arc::new(flags.finish()),
        Arc::new(words.finish()),
        Arc::new(LargeStringArray::from_iter_values((0..rows).map(|i| format!("large-{i}")))),
        Arc::new(BinaryArray::from_iter((0..rows).map(|i| (i % 6 != 0).then(|| vec![i as u8; i % 5])))),
        Arc::new(Decimal128Array::from_iter_values((0..rows as i128).map(|i| i * 101)).with_precision_and_scale(20, 2).unwrap()),
        Arc::new(FixedSizeBinaryArray::try_from_iter((0..rows).map(|i| [i as u8, 1, 2])).unwrap()),
        Arc::new(TimestampMillisecondArray::from_iter((0..rows).map(|i| (i % 10 != 9).then_some(i as i64)))),
        Arc::new(NullArray::new(rows)),
        Arc::new(Int64Array::from(vec![None::<i64>; rows])),
        Arc::new(strukt),
    ];
    let fields: Vec<Field> = [
        ("id", DataType::Int64, false),
        ("n", DataType::Int32, true),
        ("flag", DataType::Boolean, true),
        ("word", DataType::Utf8, true),
        ("large", DataType::LargeUtf8, false),
        ("bin", DataType::Binary, true),
        ("dec", DataType::Decimal128(20, 2), false),
        ("fixed", DataType::FixedSizeBinary(3), false),
        ("ts", DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, None), true),
        ("nothing", DataType::Null, true),
        ("all_null", DataType::Int64, true),
        ("pair", DataType::Struct(struct_fields), true),
    ]
    .into_iter()
    .map(|(n, t, nullable)| Field::new(n, t, nullable))
    .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn stored(batch: &RecordBatch) -> (BatchLayout, Bytes, Bytes) {
    let encoded = BatchEncoder::new(Compression::None).unwrap().encode(batch).unwrap();
    let layout = BatchLayout::parse(&encoded.meta, &batch.schema()).unwrap();
    (layout, Bytes::from(encoded.meta), encoded.body)
}

fn decode_cut(cut: &CutMessage, schema: &SchemaRef) -> RecordBatch {
    let body = super::super::read::MessageBody::from_parts(cut.parts.clone());
    assert_eq!(body.len(), cut.body_len, "the parts add up to the body length the header declares");
    let batch = decode(&cut.meta, body.into_contiguous(), schema).unwrap();
    batch.columns().iter().for_each(|c| c.to_data().validate_full().unwrap());
    batch
}

#[test]
fn given_every_cuttable_type_when_cut_at_each_plan_range_should_decode_to_those_rows() {
    let batch = sample(1001);
    let (layout, _, body) = stored(&batch);
    let schema = batch.schema();
    assert!(schema.fields().iter().all(|f| cuttable(f.data_type())));
    let plan = CutPlan::for_batch(batch.num_rows(), body.len(), body.len() / 5).expect("cut");
    assert_eq!(plan.ranges.first().unwrap().start, 0);
    assert_eq!(plan.ranges.last().unwrap().end, 1001);
    assert!(plan.ranges.len() >= 5 && plan.ranges.iter().all(|r| r.start % 8 == 0));
    let keep: Vec<usize> = (0..schema.fields().len()).collect();
    for rows in &plan.ranges {
        let cut = cut(&layout, &schema, &body, &keep, rows.clone(), None).unwrap();
        let got = decode_cut(&cut, &schema);
        assert_eq!(got, batch.slice(rows.start, rows.len()), "rows {rows:?}");
        for (g, want) in got.columns().iter().zip(batch.slice(rows.start, rows.len()).columns()) {
            assert_eq!(g.null_count(), want.null_count(), "null counts come from the bitmap of the cut rows");
        }
    }
}

#[test]
fn given_a_projection_with_metadata_columns_when_cut_should_number_offsets_from_the_cut() {
    let batch = sample(200);
    let (layout, _, body) = stored(&batch);
    let keep = vec![11, 3, 0];
    let mut fields: Vec<Field> = keep.iter().map(|&i| batch.schema().field(i).clone()).collect();
    fields.extend(metadata_fields());
    let out_schema = Arc::new(Schema::new(fields));
    let metadata = MetadataValues { bucket: 4, base_offset: 1000, timestamp_ms: 77 };
    let cut = cut(&layout, &batch.schema(), &body, &keep, 64..136, Some(metadata)).unwrap();
    let got = decode_cut(&cut, &out_schema);
    assert_eq!(got.num_rows(), 72);
    let want = batch.slice(64, 72).project(&keep).unwrap();
    assert_eq!(got.project(&[0, 1, 2]).unwrap().columns(), want.columns());
    let offsets = got.column(4).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(offsets.values().to_vec(), (1064..1136).collect::<Vec<i64>>());
}

#[test]
fn given_a_small_batch_or_no_limit_when_planning_should_send_it_whole() {
    assert_eq!(CutPlan::for_batch(65536, 4 << 20, 4 << 20), None, "fits");
    assert_eq!(CutPlan::for_batch(65536, 40 << 20, 0), None, "cutting off");
    assert_eq!(CutPlan::for_batch(10, 40 << 20, 1 << 20), None, "too few rows to cut");
    let plan = CutPlan::for_batch(65536, 35 << 20, 4 << 20).unwrap();
    assert_eq!(plan.ranges.len(), 9);
    assert!(plan.ranges.iter().all(|r| r.len() <= 7288 && r.start % 8 == 0));
}

#[test]
fn given_nested_lists_when_asked_should_not_be_cuttable() {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    assert!(!cuttable(&list));
    assert!(!cuttable(&DataType::Struct(Fields::from(vec![Field::new("l", list, true)]))));
    assert!(cuttable(&DataType::Decimal256(40, 2)));
}

#[test]
fn given_a_body_shorter_than_its_header_says_when_cut_should_fail_without_panicking() {
    let batch = sample(64);
    let (layout, _, body) = stored(&batch);
    let keep: Vec<usize> = (0..12).collect();
    let short = body.slice(..body.len() / 2);
    let err = cut(&layout, &batch.schema(), &short, &keep, 0..64, None).err().expect("a short body fails");
    assert!(matches!(err, Error::DataLoss { .. }), "{err}");
}

#[test]
fn given_offsets_that_run_backwards_when_cut_should_fail() {
    let words: ArrayRef = Arc::new(arrow_array::StringArray::from(vec!["ab"; 32]));
    let batch = RecordBatch::try_from_iter([("w", words)]).unwrap();
    let (layout, _, body) = stored(&batch);
    let mut damaged = body.to_vec();
    let (offsets_at, _) = layout.buffers[1];
    // The first offset of rows 16..32 set above their last one.
    damaged[offsets_at as usize + 16 * 4..offsets_at as usize + 17 * 4].copy_from_slice(&1000i32.to_le_bytes());
    let err = cut(&layout, &batch.schema(), &Bytes::from(damaged), &[0], 16..32, None).err().expect("backward offsets fail");
    assert!(err.to_string().contains("offsets run from 1000"), "{err}");
}

#[test]
fn given_aligned_and_unaligned_offsets_when_rebased_should_give_the_same_bytes() {
    let offsets: Vec<u8> = [7i32, 9, 15, 15, 40].iter().flat_map(|o| o.to_le_bytes()).collect();
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&offsets);
    let aligned = Bytes::from(offsets.clone());
    let unaligned = Bytes::from(shifted).slice(1..);
    let want: Vec<u8> = [0i32, 2, 8, 8, 33].iter().flat_map(|o| o.to_le_bytes()).collect();
    assert_eq!(rebased::<4>(&aligned, 7).to_vec(), want);
    assert_eq!(rebased::<4>(&unaligned, 7).to_vec(), want);
    let large: Vec<u8> = [100i64, 164].iter().flat_map(|o| o.to_le_bytes()).collect();
    assert_eq!(rebased::<8>(&Bytes::from(large), 100).to_vec(), [0i64, 64].iter().flat_map(|o| o.to_le_bytes()).collect::<Vec<u8>>());
}
