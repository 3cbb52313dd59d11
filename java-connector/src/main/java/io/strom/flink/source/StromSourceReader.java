package io.strom.flink.source;

import java.util.Map;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.source.reader.SingleThreadMultiplexSourceReaderBase;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.data.RowData;

/**
 * The source reader of a Strom table: one fetcher thread runs a {@link StromSplitReader} over
 * every split this subtask owns; the task thread emits rows with {@link StromRecordEmitter},
 * which keeps each split's {@link StromSplitState} exact for checkpoints.
 */
final class StromSourceReader
    extends SingleThreadMultiplexSourceReaderBase<StromRecord, RowData, StromSourceSplit, StromSplitState> {

  StromSourceReader(SourcePlan plan, SourceReaderContext context) {
    this(plan, context, context.metricGroup().counter("stromBytesReceived"));
  }

  private StromSourceReader(SourcePlan plan, SourceReaderContext context, Counter bytesReceived) {
    super(
        () -> new StromSplitReader(plan, bytesReceived),
        new StromRecordEmitter(),
        new Configuration(),
        context);
  }

  @Override
  public void start() {
    // Splits are pushed by the enumerator: nothing to request.
  }

  @Override
  protected void onSplitFinished(Map<String, StromSplitState> finishedSplitIds) {
    // Nothing to do: a finished split is simply done (bounded reads, dropped partitions).
  }

  @Override
  protected StromSplitState initializedState(StromSourceSplit split) {
    return new StromSplitState(split);
  }

  @Override
  protected StromSourceSplit toSplitType(String splitId, StromSplitState state) {
    return state.toSplit();
  }
}
