//! `observes state get | set | clear` (the changes are made by `observes_pipeline::state`).

use anyhow::{bail, Context, Result};
use observes_pipeline::Config;
use serde_json::Value;

use crate::args::StateAction;

pub(crate) fn state(action: StateAction) -> Result<()> {
    match action {
        StateAction::Get { pipeline, config } => {
            match observes_pipeline::state::get(&Config::load(&config)?, &pipeline)? {
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
            observes_pipeline::state::set(&Config::load(&config)?, &pipeline, &value)?;
        }
        StateAction::Clear { pipeline, config } => {
            observes_pipeline::state::clear(&Config::load(&config)?, &pipeline)?;
        }
    }
    Ok(())
}
