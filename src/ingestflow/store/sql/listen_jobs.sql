-- Wake on every enqueue (documents.enqueue notifies {channel}). LISTEN takes no bind
-- parameter: the channel is filled from the JOBS_CHANNEL constant, never from input.
LISTEN {channel}
