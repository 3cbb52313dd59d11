package io.strom.flink.client;

/** Stored data failed its checksum (DATA_LOSS). */
public class StromDataLossException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromDataLossException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
