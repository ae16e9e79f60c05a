document.querySelector("h1").title = "served from S3";
