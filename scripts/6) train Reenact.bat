@echo off
rem 6) train Reenact: train the landmark-driven Reenact model on data_src/aligned (data_dst/aligned gives
rem the dst face shape) into workspace/model; asks the model options on the first run.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --model-dir "%WORKSPACE%\model" ^
    --model Reenact ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
