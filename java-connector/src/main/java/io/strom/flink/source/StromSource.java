package io.strom.flink.source;

import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;
import org.apache.flink.table.data.RowData;

/**
 * The FLIP-27 source of a Strom table: one split per bucket (per partition and bucket), the
 * next offset of every split in checkpoints, rows as columnar {@code RowData} over the Arrow
 * vectors the node sent, with the {@code RowKind} of a primary-key table's changelog. What is
 * read (columns, partitions, start, bounds, limit) is the {@link SourcePlan}.
 */
public final class StromSource implements Source<RowData, StromSourceSplit, StromEnumeratorState> {
  private static final long serialVersionUID = 1L;

  private final SourcePlan plan;

  public StromSource(SourcePlan plan) {
    this.plan = plan;
  }

  public SourcePlan plan() {
    return plan;
  }

  @Override
  public Boundedness getBoundedness() {
    return plan.bounded() ? Boundedness.BOUNDED : Boundedness.CONTINUOUS_UNBOUNDED;
  }

  @Override
  public SplitEnumerator<StromSourceSplit, StromEnumeratorState> createEnumerator(
      SplitEnumeratorContext<StromSourceSplit> context) {
    return new StromSourceEnumerator(context, plan, StromEnumeratorState.empty());
  }

  @Override
  public SplitEnumerator<StromSourceSplit, StromEnumeratorState> restoreEnumerator(
      SplitEnumeratorContext<StromSourceSplit> context, StromEnumeratorState checkpoint) {
    return new StromSourceEnumerator(context, plan, checkpoint);
  }

  @Override
  public SimpleVersionedSerializer<StromSourceSplit> getSplitSerializer() {
    return StromSplitSerializer.INSTANCE;
  }

  @Override
  public SimpleVersionedSerializer<StromEnumeratorState> getEnumeratorCheckpointSerializer() {
    return StromEnumeratorState.Serializer.INSTANCE;
  }

  @Override
  public SourceReader<RowData, StromSourceSplit> createReader(SourceReaderContext context) {
    return new StromSourceReader(plan, context);
  }
}
