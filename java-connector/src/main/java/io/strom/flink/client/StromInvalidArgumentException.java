package io.strom.flink.client;

/** The request or its data is malformed or does not fit the table (INVALID_ARGUMENT): fix the input, retrying does not help. */
public class StromInvalidArgumentException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromInvalidArgumentException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
