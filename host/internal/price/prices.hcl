# Default prices of llmproxy, in USD per million tokens: public list prices
# of common models of the providers llmproxy serves. Override them with
# prices { file = "prices.hcl" } or inline price blocks in the
# configuration; check them against your contract before billing anyone.
#
# Kinds: input, output, cached_input (cache reads; defaults to input),
# cache_write (defaults to input), reasoning (defaults to output).
# Labels are model names or patterns; an exact name beats a pattern and a
# longer pattern beats a shorter one. Patterns with a leading "*" also
# match Bedrock's regional inference profiles ("us.anthropic.…").

# OpenAI (also Azure OpenAI deployments named after their model)
price "gpt-4o" {
  input        = 2.50
  cached_input = 1.25
  output       = 10.00
}
price "gpt-4o-2024-*" {
  input        = 2.50
  cached_input = 1.25
  output       = 10.00
}
price "gpt-4o-mini*" {
  input        = 0.15
  cached_input = 0.075
  output       = 0.60
}
price "gpt-4.1*" {
  input        = 2.00
  cached_input = 0.50
  output       = 8.00
}
price "gpt-4.1-mini*" {
  input        = 0.40
  cached_input = 0.10
  output       = 1.60
}
price "gpt-4.1-nano*" {
  input        = 0.10
  cached_input = 0.025
  output       = 0.40
}
price "gpt-5*" {
  input        = 1.25
  cached_input = 0.125
  output       = 10.00
}
price "gpt-5-mini*" {
  input        = 0.25
  cached_input = 0.025
  output       = 2.00
}
price "gpt-5-nano*" {
  input        = 0.05
  cached_input = 0.005
  output       = 0.40
}
price "o3*" {
  input        = 2.00
  cached_input = 0.50
  output       = 8.00
}
price "o3-mini*" {
  input        = 1.10
  cached_input = 0.55
  output       = 4.40
}
price "o4-mini*" {
  input        = 1.10
  cached_input = 0.275
  output       = 4.40
}
price "text-embedding-3-small" {
  input = 0.02
}
price "text-embedding-3-large" {
  input = 0.13
}

# Anthropic (the same models on Bedrock and Vertex match the patterns)
price "*claude-opus-4-5*" {
  input        = 5.00
  cached_input = 0.50
  cache_write  = 6.25
  output       = 25.00
}
price "*claude-opus-4*" {
  input        = 15.00
  cached_input = 1.50
  cache_write  = 18.75
  output       = 75.00
}
price "*claude-sonnet-4*" {
  input        = 3.00
  cached_input = 0.30
  cache_write  = 3.75
  output       = 15.00
}
price "*claude-3-7-sonnet*" {
  input        = 3.00
  cached_input = 0.30
  cache_write  = 3.75
  output       = 15.00
}
price "*claude-haiku-4-5*" {
  input        = 1.00
  cached_input = 0.10
  cache_write  = 1.25
  output       = 5.00
}
price "*claude-3-5-haiku*" {
  input        = 0.80
  cached_input = 0.08
  cache_write  = 1.00
  output       = 4.00
}

# Amazon Bedrock
price "*amazon.nova-pro*" {
  input        = 0.80
  cached_input = 0.20
  output       = 3.20
}
price "*amazon.nova-lite*" {
  input        = 0.06
  cached_input = 0.015
  output       = 0.24
}
price "*amazon.nova-micro*" {
  input        = 0.035
  cached_input = 0.00875
  output       = 0.14
}
price "*meta.llama3-3-70b*" {
  input  = 0.72
  output = 0.72
}

# Google Vertex AI (Gemini)
price "gemini-2.5-pro*" {
  input        = 1.25
  cached_input = 0.125
  output       = 10.00
}
price "gemini-2.5-flash*" {
  input        = 0.30
  cached_input = 0.03
  output       = 2.50
}
price "gemini-2.5-flash-lite*" {
  input        = 0.10
  cached_input = 0.01
  output       = 0.40
}
price "gemini-2.0-flash*" {
  input        = 0.15
  cached_input = 0.0375
  output       = 0.60
}

# IBM watsonx.ai
price "ibm/granite-*" {
  input  = 0.20
  output = 0.20
}
price "meta-llama/llama-3-3-70b-instruct" {
  input  = 0.71
  output = 0.71
}
price "mistralai/mistral-large*" {
  input  = 3.00
  output = 10.00
}

# OCI Generative AI
price "cohere.command-a*" {
  input  = 2.50
  output = 10.00
}
price "cohere.command-r-plus*" {
  input  = 2.50
  output = 10.00
}
price "cohere.command-r-*" {
  input  = 0.15
  output = 0.60
}
price "meta.llama-3.3-70b*" {
  input  = 0.72
  output = 0.72
}
