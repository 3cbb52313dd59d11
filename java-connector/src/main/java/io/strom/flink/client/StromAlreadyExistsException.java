package io.strom.flink.client;

/** A database, table or partition of that name exists (ALREADY_EXISTS). */
public class StromAlreadyExistsException extends StromException {
  private static final long serialVersionUID = 1L;

  public StromAlreadyExistsException(String status, String nodeMessage) {
    super(status, nodeMessage);
  }
}
