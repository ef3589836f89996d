"""Label Studio: its labeling config, the API client, tasks and exports, project sync, the queue."""
