//! `observes state get | set | clear` (the changes are made by `observes_pipeline::state`).

use anyhow::{bail, Context, Result};
use observes_app::Config;
use serde_json::Value;

use crate::args::StateAction;

pub(crate) fn state(action: StateAction) -> Result<()> {
    match action {
        StateAction::Get { pipeline, config } => {
            let config = Config::load(&config)?;
            let pipeline = config.pipeline(&pipeline)?;
            match observes_pipeline::state::get(&config.destination(), pipeline)? {
                Some(s) => println!("{}", serde_json::to_string_pretty(&s)?),
                None => println!("null"),
            }
        }
        StateAction::Set {
            pipeline,
            state,
            config,
        } => {
            let text = if state == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                state
            };
            let value: Value = serde_json::from_str(&text).context("the state must be JSON")?;
            if !value.is_object() {
                bail!("the state must be a JSON object");
            }
            let config = Config::load(&config)?;
            let pipeline = config.pipeline(&pipeline)?;
            observes_pipeline::state::set(&config.destination(), pipeline, &value)?;
        }
        StateAction::Clear { pipeline, config } => {
            let config = Config::load(&config)?;
            let pipeline = config.pipeline(&pipeline)?;
            observes_pipeline::state::clear(&config.destination(), pipeline)?;
        }
    }
    Ok(())
}
