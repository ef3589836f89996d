"""What is learned from the team's labels: the classifier and its candidates, the text vectors and their cache."""
